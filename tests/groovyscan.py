"""Reading Groovy / Nextflow config text for the container checks: strings and comments
skipped, matching braces, top-level blocks."""
from __future__ import annotations


def skip_string(text: str, i: int) -> int:
    """Index just past the Groovy string literal starting at text[i]."""
    for q in ('"""', "'''"):
        if text.startswith(q, i):
            j = text.find(q, i + 3)
            while j != -1 and text[j - 1] == "\\":
                j = text.find(q, j + 1)
            return len(text) if j == -1 else j + 3
    q = text[i]
    j = i + 1
    depth = 0
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if q == '"' and text.startswith("${", j):
            depth += 1
            j += 2
            continue
        if depth and c == "}":
            depth -= 1
        elif depth and c in "'\"":
            j = skip_string(text, j)
            continue
        elif not depth and c == q:
            return j + 1
        elif c == "\n" and not depth:
            return j
        j += 1
    return j


def scan_code(text: str, start: int = 0):
    """Yield (index, char) of code characters: strings and comments are skipped."""
    j = start
    while j < len(text):
        c = text[j]
        if text.startswith("//", j):
            j = text.find("\n", j)
            j = len(text) if j == -1 else j
            continue
        if text.startswith("/*", j):
            j = text.find("*/", j)
            j = len(text) if j == -1 else j + 2
            continue
        if c in "'\"":
            j = skip_string(text, j)
            continue
        yield j, c
        j += 1


def block_end(text: str, i: int) -> int:
    """text[i] == '{': index of the matching '}', skipping strings and comments."""
    depth = 0
    for j, c in scan_code(text, i):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced braces")


def top_level_spans(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) of the top-level `{...}` blocks of a Groovy/config text."""
    spans, depth, start = [], 0, None
    for j, c in scan_code(text):
        if c == "{":
            if depth == 0:
                start = j
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start is not None:
                spans.append((start, j))
    return spans


def blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the given spans replaced by spaces (keeps offsets)."""
    chars = list(text)
    for a, b in spans:
        chars[a:b + 1] = " " * (b + 1 - a)
    return "".join(chars)


def expression_at(text: str, i: int) -> str:
    """The Groovy expression starting at text[i]: a closure `{...}` or the rest of the line."""
    while i < len(text) and text[i] in " \t":
        i += 1
    if text.startswith("{", i):
        return text[i:block_end(text, i) + 1]
    end = text.find("\n", i)
    return text[i: len(text) if end == -1 else end].strip()
