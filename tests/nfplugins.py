"""The Nextflow plugins our code uses, for the language server (tests/nflang.py) and the include check.

The language server resolves ``include { f } from 'plugin/<name>'`` and plugin config scopes by
asking a plugin registry (registry.nextflow.io by default) for the plugin's spec. That host is not
reachable from CI, so :class:`PluginRegistry` serves, on 127.0.0.1, the spec of the plugins we use
(nf-schema 2.x: its ``@Function`` signatures and its ``validation`` config scope, transcribed from
nf-schema's ValidationExtension / ValidationConfig). An unknown plugin, or a name the plugin does
not define, is still an error, as with the real registry. Set ``NFLANG_PLUGIN_REGISTRY`` to a real
registry URL to use that one instead.
"""
from __future__ import annotations

import http.server
import json
import os
import threading
from urllib.parse import urlparse


def _fn(name: str, returns: str, params: list[tuple[str, str]], description: str) -> dict:
    return {"type": "Function", "spec": {"name": name, "description": description, "returnType": returns,
                                         "parameters": [{"name": n, "type": t} for n, t in params]}}


def _with_options(name: str, returns: str, params: list[tuple[str, str]], description: str,
                  at: int = 0) -> list[dict]:
    """The two overloads of a function: with an ``options`` Map inserted at position ``at``, and without."""
    return [_fn(name, returns, params[:at] + [("options", "Map")] + params[at:], description),
            _fn(name, returns, params, description)]


def _opt(name: str, type_: str, description: str) -> dict:
    return {"type": "ConfigOption", "spec": {"name": name, "description": description, "type": type_}}


# nf-schema 2.x (ValidationExtension.groovy @Function methods, ValidationConfig @ConfigOption fields)
NF_SCHEMA_SPEC = {"definitions": [
    *_with_options("samplesheetToList", "List", [("samplesheet", "Object"), ("schema", "Object")],
                   "Validate a samplesheet against a JSON schema and return it as a list of rows.", at=2),
    *_with_options("validateParameters", "void", [], "Validate the pipeline parameters against the schema."),
    *_with_options("validate", "List", [("input", "Object"), ("schema", "Object")],
                   "Validate any value against a JSON schema."),
    _fn("paramsHelp", "String", [("options", "Map")], "Help message for the parameters."),
    _fn("paramsHelp", "String", [("options", "Map"), ("parameter", "String")], "Help message for one parameter."),
    *_with_options("paramsSummaryMap", "Map", [("workflow", "Object")], "Parameters that differ from defaults."),
    *_with_options("paramsSummaryLog", "String", [("workflow", "Object")], "Parameter summary as text."),
    {"type": "ConfigScope", "spec": {
        "name": "validation",
        "description": "The `validation` scope allows you to configure the `nf-schema` plugin.",
        "children": [
            _opt("lenientMode", "Boolean", "Toggle lenient mode."),
            _opt("monochromeLogs", "Boolean", "Toggle monochrome logs."),
            _opt("failUnrecognisedParams", "Boolean", "Fail if unrecognised parameters are found."),
            _opt("failUnrecognisedHeaders", "Boolean", "Fail if unrecognised samplesheet headers are found."),
            _opt("showHiddenParams", "Boolean", "Deprecated: use validation.help.showHidden."),
            _opt("maxErrValSize", "Integer", "Maximum size of a value shown in an error message."),
            _opt("parametersSchema", "String", "The JSON schema file used for parameter validation."),
            _opt("defaultIgnoreParams", "List", "Default parameters to ignore during validation."),
            _opt("ignoreParams", "List", "Parameters to ignore during validation."),
            {"type": "ConfigScope", "spec": {"name": "help", "description": "Help message options.", "children": [
                _opt("enabled", "Boolean", "Enable the help message parameters."),
                _opt("showHidden", "Boolean", "Show hidden parameters."),
                _opt("beforeText", "String", "Text before the help message."),
                _opt("afterText", "String", "Text after the help message."),
                _opt("command", "String", "Example command."),
                _opt("shortParameter", "String", "Parameter for the short help."),
                _opt("fullParameter", "String", "Parameter for the full help."),
                _opt("showHiddenParameter", "String", "Parameter that shows hidden parameters."),
            ]}},
            {"type": "ConfigScope", "spec": {"name": "summary", "description": "Parameter summary options.", "children": [
                _opt("beforeText", "String", "Text before the summary."),
                _opt("afterText", "String", "Text after the summary."),
                _opt("hideParams", "List", "Parameters hidden from the summary."),
            ]}},
        ]}},
]}

PLUGIN_SPECS: dict[str, dict] = {"nf-schema": NF_SCHEMA_SPEC}


class PluginRegistry:
    """A local stand-in for the plugin registry's ``/v1/plugins/<name>[/<version>]`` endpoints."""

    def __init__(self, specs: dict[str, dict] | None = None):
        self.specs = PLUGIN_SPECS if specs is None else specs
        self.requests: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self.url = os.environ.get("NFLANG_PLUGIN_REGISTRY", "")

    def __enter__(self) -> "PluginRegistry":
        if self.url:
            return self
        specs, seen = self.specs, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                seen.append(self.path)
                parts = [p for p in urlparse(self.path).path.split("/") if p]
                body, status = {}, 404
                if len(parts) in (3, 4) and parts[:2] == ["v1", "plugins"] and parts[2] in specs:
                    version = parts[3] if len(parts) == 4 else "0.0.0"
                    release = {"version": version, "spec": json.dumps(specs[parts[2]])}
                    body = {"pluginRelease": release} if len(parts) == 4 else {"plugin": {"id": parts[2], "releases": [release]}}
                    status = 200
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
