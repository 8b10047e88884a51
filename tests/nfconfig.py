"""Reading the Nextflow layer's Groovy / config text for the static tests: strings and comments
masked (:func:`mask`), matching brackets, top-level and selector blocks, literal params, the
ext.args of conf/modules.config; and the schema helpers. Regular expressions are enough here
because nf-lang (tests/nflang.py) has already checked the syntax."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN_NF = REPO / "main.nf"
NEXTFLOW_CONFIG = REPO / "nextflow.config"
SCHEMA = REPO / "nextflow_schema.json"
CONF = REPO / "conf"
MODULES = REPO / "modules" / "local"

# conf/test.config params beyond fatescope.engine.profiles.TEST_PROFILE
TEST_PROFILE_ONLY = {"simulate": True}


def mask(text: str) -> str:
    """``text`` with comments and the insides of strings (GString interpolations included)
    replaced by spaces; same length, newlines kept, quotes kept."""
    out = list(text)
    n = len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    def string(i: int, quote: str) -> int:  # i: first char after the opening quote
        while i < n:
            if text[i] == "\\":
                i += 2
            elif text.startswith(quote, i):
                return i + len(quote)
            elif quote[0] == '"' and text.startswith("${", i):
                i = code(i + 2, until_brace=True)
            else:
                i += 1
        return n

    def code(i: int, until_brace: bool) -> int:
        depth = 0
        while i < n:
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                blank(i, j)
                i = j
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                j = n if j < 0 else j + 2
                blank(i, j)
                i = j
            elif text.startswith('"""', i) or text.startswith("'''", i):
                j = string(i + 3, text[i:i + 3])
                blank(i + 3, max(i + 3, j - 3))
                i = j
            elif text[i] in "\"'":
                j = string(i + 1, text[i])
                blank(i + 1, max(i + 1, j - 1))
                i = j
            else:
                if until_brace and text[i] == "{":
                    depth += 1
                elif until_brace and text[i] == "}":
                    if depth == 0:
                        return i + 1
                    depth -= 1
                i += 1
        return n

    code(0, until_brace=False)
    return "".join(out)


def closing(masked: str, open_at: int, pair: str = "{}") -> int:
    """Index of the bracket closing the one at ``open_at`` (in masked text)."""
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == pair[0]:
            depth += 1
        elif masked[i] == pair[1]:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {pair!r} from offset {open_at}")


def string_at(text: str, i: int) -> str:
    """The literal of the quoted string starting at ``text[i]`` (no interpolation)."""
    quote = text[i]
    j = i + 1
    while text[j] != quote:
        j += 2 if text[j] == "\\" else 1
    return text[i + 1:j].replace("\\" + quote, quote)


def literal(raw: str):
    """A Groovy literal as Python: null, true/false, numbers, plain strings."""
    raw = raw.strip().rstrip(",")
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d*([eE]-?\d+)?", raw):
        return float(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and "$" not in raw:
        return string_at(raw, 0)
    raise ValueError(f"not a literal: {raw}")


def blocks(text: str, pattern: str, masked: str | None = None) -> list[tuple[re.Match, str, int]]:
    """(match, body text, body offset) of every ``pattern`` ending in '{' (matched on masked text)."""
    masked = mask(text) if masked is None else masked
    out = []
    for m in re.finditer(pattern, masked):
        open_at = m.end() - 1
        assert masked[open_at] == "{", pattern
        end = closing(masked, open_at)
        out.append((m, text[open_at + 1:end], open_at + 1))
    return out


def top_level_block(text: str, name: str) -> str | None:
    """Body of the first ``name { ... }`` block at brace depth 0, or None."""
    masked = mask(text)
    for m in re.finditer(rf"(?m)^\s*{name}\s*\{{", masked):
        if masked[:m.start()].count("{") == masked[:m.start()].count("}"):
            end = closing(masked, m.end() - 1)
            return text[m.end():end]
    return None


def params_block(path: Path) -> dict[str, object]:
    """The literal params of the top-level ``params { }`` block of a config file."""
    body = top_level_block(path.read_text(), "params")
    assert body is not None, f"{path}: no params block"
    masked = mask(body)
    params: dict[str, object] = {}
    for line, mline in zip(body.splitlines(), masked.splitlines()):
        if not mline.strip():
            continue
        m = re.fullmatch(r"\s*(\w+)\s*=\s*(.*?)\s*", mline)
        assert m, f"{path}: params lines are `name = literal`; got {line.strip()!r}"
        raw = line[m.start(2):m.start(2) + len(mline[m.start(2):].rstrip())]
        try:
            params[m.group(1)] = literal(raw)
        except ValueError as exc:
            raise AssertionError(f"{path}: param {m.group(1)} must be a literal (the schema's default is "
                                 f"compared with it), got {raw!r}") from exc
    return params


def top_level_names(body: str) -> list[str]:
    """Names of the ``name {`` blocks at depth 0 of a block body."""
    masked = mask(body)
    names, depth = [], 0
    for m in re.finditer(r"\w+\s*\{|[{}]", masked):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        else:
            if depth == 0:
                names.append(tok.split()[0].rstrip("{"))
            depth += 1
    return names


def selector_blocks(text: str, selector: str) -> dict[str, str]:
    """{name: body} of the ``withName: 'NAME' {`` / ``withLabel: 'name' {`` blocks of a config. A selector
    of alternatives (``'MASH|MASH_FIT'``: a stage and its split steps) gives its body to each name; the
    bodies of several blocks selecting one name are joined in order."""
    out: dict[str, str] = {}
    for m, body, _ in blocks(text, selector + r"\s*:\s*(['\"])[^'\"]*['\"]\s*\{"):
        for name in string_at(text, m.start(1)).split("|"):
            out[name] = f"{out[name]}\n{body}" if name in out else body
    return out


def with_name_blocks(text: str) -> dict[str, str]:
    return selector_blocks(text, "withName")


def with_label_blocks(text: str) -> dict[str, str]:
    return selector_blocks(text, "withLabel")


def ext_args_options(block: str) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """From a withName block: {option: param} of the ext.args map, every other literal
    --option written in ext.args, and {flag: param} of the boolean flags passed as
    `params.<param> ? '--<flag>' : '--no-<flag>'`."""
    m = re.search(r"ext\.args\s*=", mask(block))
    if not m:
        return {}, set(), {}
    region = block[m.end():]
    pairs = dict(re.findall(r"['\"]([a-z][a-z0-9-]*)['\"]\s*:\s*params\.(\w+)", region))
    flags = {flag: param for param, flag, off in re.findall(
        r"params\.(\w+)\s*\?\s*['\"]--([a-z][a-z0-9-]*)['\"]\s*:\s*['\"]--([a-z][a-z0-9-]*)['\"]", region)
        if off == f"no-{flag}"}
    literal_opts = set(re.findall(r"--([a-z][a-z0-9-]*)", region))
    return pairs, literal_opts, flags


def ext_args_closure(block: str) -> str | None:
    masked = mask(block)
    m = re.search(r"ext\.args\s*=\s*\{", masked)
    if not m:
        return None
    return block[m.end() - 1:closing(masked, m.end() - 1) + 1]


def directive_closure(body: str, name: str) -> str:
    """The ``{ ... }`` assigned to directive ``name`` at brace depth 0 of a block body."""
    masked = mask(body)
    for m in re.finditer(rf"(?m)^\s*{name}\s*=\s*\{{", masked):
        if masked[:m.start()].count("{") == masked[:m.start()].count("}"):
            return body[m.end() - 1:closing(masked, m.end() - 1) + 1]
    raise AssertionError(f"no `{name} = {{ ... }}` at the top of the block")


def clean_default(value):
    return None if value is None or type(value).__name__ == "Sentinel" or repr(value).startswith("Sentinel") else value


def schema_properties(schema: dict) -> dict[str, dict]:
    props = dict(schema.get("properties", {}))
    for group in schema.get("$defs", {}).values():
        for name, spec in group.get("properties", {}).items():
            assert name not in props, f"param {name} is in two schema groups"
            props[name] = spec
    return props


def json_type(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[type(value)]


def mutate(text: str, old: str, new: str, count: int = -1) -> str:
    """``text`` with ``old`` replaced by ``new`` (for negative tests); ``old`` must be there."""
    assert old in text, f"mutation does not apply: {old!r} not found"
    return text.replace(old, new, count)
