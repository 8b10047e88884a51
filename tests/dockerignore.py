""".dockerignore semantics (moby's patternmatcher) for the static container tests."""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


def _glob_regex(pattern: str) -> re.Pattern:
    """Docker's (moby patternmatcher) pattern syntax: ** crosses folders, * and ? do not."""
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i:i + 2] == "**":
                i += 1
                if pattern[i + 1:i + 2] == "/":  # '**/' matches zero or more folders
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out += re.escape(c)
            else:
                cls = pattern[i + 1:j]
                out += "[" + ("^" + cls[1:] if cls.startswith("!") else cls) + "]"
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


@dataclass
class DockerIgnore:
    patterns: list[tuple[re.Pattern, bool, str]]  # (regex, is_exception, original)

    @classmethod
    def from_text(cls, text: str) -> "DockerIgnore":
        patterns = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                continue
            patterns.append((_glob_regex(cleaned), exception, line))
        return cls(patterns)

    @classmethod
    def for_context(cls, context: Path) -> "DockerIgnore":
        path = context / ".dockerignore"
        return cls.from_text(path.read_text() if path.is_file() else "")

    def excluded(self, rel: str) -> bool:
        """moby's MatchesOrParentMatches: a pattern applies to the path or any of its parents."""
        rel = posixpath.normpath(rel).lstrip("/")
        parents = rel.split("/")
        candidates = ["/".join(parents[: k + 1]) for k in range(len(parents))]
        matched = False
        for regex, exception, _ in self.patterns:
            if exception != matched:
                continue
            if any(regex.match(c) for c in candidates):
                matched = not exception
        return matched

    def included_files(self, context: Path, rel: str) -> list[str]:
        """Files under context/rel that are sent to the builder."""
        root = context / rel
        if root.is_file():
            return [] if self.excluded(rel) else [rel]
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
            for f in filenames:
                r = Path(dirpath, f).relative_to(context).as_posix()
                if not self.excluded(r):
                    out.append(r)
        return out
