"""The samplesheet: read the CSV, validate it against ``assets/schema_input.json``.

The schema is the single definition shared with Nextflow's nf-schema plugin. jsonschema knows
draft 2020-12; the nf-schema keywords (``exists``, ``uniqueEntries``, ``errorMessage``, ``meta``
and the path formats) are added here with the same meaning.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import pandas as pd

from ..errors import InputError
from .counts import detect_counts_format

REQUIRED_PREFIX = "__required__"


@cache
def load_schema(path: str | None = None) -> dict:
    """The samplesheet JSON schema (the bundled one unless ``path`` is given)."""
    if path:
        return json.loads(Path(path).read_text())
    return json.loads(resources.files("fatescope").joinpath("assets/schema_input.json").read_text())


def _exists(validator, exists, instance, schema):
    if not exists or not isinstance(instance, str):
        return
    path = Path(instance)
    fmt = schema.get("format", "path")
    if fmt == "file-path" and not path.is_file():
        yield jsonschema.ValidationError(f"file '{instance}' does not exist")
    elif fmt == "directory-path" and not path.is_dir():
        yield jsonschema.ValidationError(f"folder '{instance}' does not exist")
    elif not path.exists():
        yield jsonschema.ValidationError(f"'{instance}' does not exist")


def _unique_entries(validator, fields, instance, schema):
    if not isinstance(instance, list):
        return
    seen: dict[tuple, int] = {}
    for i, row in enumerate(instance):
        if not isinstance(row, dict) or any(f not in row for f in fields):
            continue
        key = tuple(row[f] for f in fields)
        if key in seen:
            err = jsonschema.ValidationError(
                f"duplicate {'/'.join(fields)} {'/'.join(map(repr, key))} (first seen in row {seen[key] + 1})")
            err.path.extend([i, fields[0]])
            yield err
        else:
            seen[key] = i


def _noop(validator, value, instance, schema):
    return iter(())


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"exists": _exists, "uniqueEntries": _unique_entries, "errorMessage": _noop, "meta": _noop},
)
_SheetOnlyValidator = jsonschema.validators.extend(_Validator, {"exists": _noop})


@dataclass(frozen=True)
class Problem:
    row: int | None  # 1-based data row; None for sheet-level problems
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "header (line 1)" if self.row is None else f"row {self.row} (line {self.row + 1})"
        return f"{where}, field '{self.field}': {self.message}" if self.field else f"{where}: {self.message}"


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV/TSV samplesheet; empty cells are left out of the row dicts."""
    if not path.is_file():
        raise InputError(f"{path}: samplesheet not found (expected a CSV file with a header row)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is not part of 'sample'
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: samplesheet is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    dialect = "excel-tab" if path.suffix == ".tsv" else "excel"
    reader = csv.reader(text.splitlines(), dialect=dialect)
    lines = [r for r in reader if any(c.strip() for c in r)]
    if not lines:
        raise InputError(f"{path}: samplesheet is empty (expected a header row and one row per sample)")
    if len(lines) == 1:
        raise InputError(f"{path}: samplesheet has a header but no sample rows (expected one row per sample "
                         f"under {','.join(h.strip() for h in lines[0])})")
    header = [h.strip() for h in lines[0]]
    rows = []
    for n, cells in enumerate(lines[1:], start=1):
        if len(cells) != len(header):
            raise InputError(f"{path}: row {n} (line {n + 1}) has {len(cells)} fields, the header has {len(header)}")
        rows.append({h: c.strip() for h, c in zip(header, cells) if c.strip() != ""})
    return header, rows


def _problems(header: list[str], rows: list[dict], schema: dict, check_files: bool = True) -> list[Problem]:
    problems: list[Problem] = []
    required = schema.get("items", {}).get("required", [])
    missing_cols = [c for c in required if c not in header]
    for col in missing_cols:
        problems.append(Problem(None, col, f"required column '{col}' is missing (columns needed: {', '.join(required)})"))
    props = schema.get("items", {}).get("properties", {})
    validator = _Validator if check_files else _SheetOnlyValidator
    for err in sorted(validator(schema).iter_errors(rows), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        row = path[0] + 1 if path and isinstance(path[0], int) else None
        field = path[1] if len(path) > 1 else None
        if err.validator == "required":
            field = re.findall(r"'([^']+)'", err.message)[0]
            if field in missing_cols:
                continue
            problems.append(Problem(row, field, "is empty; a value is required"))
            continue
        value = err.instance if not isinstance(err.instance, (list, dict)) else None
        custom = props.get(field, {}).get("errorMessage") if field else None
        detail = f"{err.message}" + (f" ({custom})" if custom and err.validator not in ("uniqueEntries",) else "")
        if err.validator == "pattern":
            detail = f"value {value!r} is not valid" + (f": {custom}" if custom else "")
        problems.append(Problem(row, field, detail))
    return problems


@dataclass(frozen=True)
class Samplesheet:
    path: Path
    table: pd.DataFrame  # one row per sample, all values strings, paths absolute


def validate_samplesheet(path: str | Path, schema_path: str | None = None, check_files: bool = True) -> Samplesheet:
    """Validate ``path``; raise one InputError listing every bad row and field. ``check_files=False``
    checks the sheet alone (file cells may be URLs: they are not opened, and stay as written)."""
    path = Path(path)
    schema = load_schema(schema_path)
    header, rows = read_rows(path)
    problems = _problems(header, rows, schema, check_files)
    fmt_cols = {"counts"} if check_files else set()
    for i, row in enumerate(rows, start=1):
        for col in fmt_cols & row.keys():
            if Path(row[col]).exists():
                try:
                    detect_counts_format(Path(row[col]))
                except InputError as exc:
                    problems.append(Problem(i, col, str(exc)))
    if problems:
        raise InputError(f"{path}: samplesheet has {len(problems)} problem(s)", [str(p) for p in problems])
    table = pd.DataFrame(rows, columns=header, dtype=str)
    for col, spec in schema["items"]["properties"].items():
        if spec.get("exists") and col in table and check_files:
            table[col] = table[col].map(lambda v: str(Path(v).resolve()) if isinstance(v, str) else v)
    return Samplesheet(path=path, table=table)
