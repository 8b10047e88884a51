"""Reading the daywise effect tables that mash consumes and the posterior tables it writes.

Input (from the fate stage): ``gene, betahat_<day>..., se_<day>...`` or
``guide, gene, betahat_<day>..., se_<day>...``. Output: the id columns, then ``postmean_<day>``,
``postsd_<day>``, ``lfsr_<day>``. Errors name the file, the row (1-based data row and id) and the column.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

KINDS = ("gene", "guide")
POSTERIOR_FIELDS = ("postmean", "postsd", "lfsr")


@dataclass(frozen=True)
class DaywiseTable:
    kind: str                 # gene or guide (the first column's name)
    ids: pd.DataFrame         # the id columns, in file order
    days: list[str]
    bhat: np.ndarray
    shat: np.ndarray


# |betahat| and se (and 1/se) above this cannot be squared in double precision
VALUE_LIMIT = 1e150


def _read_csv(path: str | os.PathLike) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({exc})") from None


def read_table_text(path: str | os.PathLike) -> pd.DataFrame:
    """A mash table as text (every cell a str), so numbers are parsed exactly by the readers below."""
    return _read_csv(path)


def day_columns(columns: list[str], prefix: str) -> list[str]:
    return [c[len(prefix):] for c in columns if c.startswith(prefix)]


def _parse_float(text: str) -> float:
    """Correctly rounded decimal -> double (Python's parser); NaN where the text is not a plain number."""
    if "_" in text:              # float() accepts digit separators ("1_0"); a table value with one is an error
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def exact_floats(values: pd.DataFrame) -> np.ndarray:
    """The numbers in a string table, each the double nearest its decimal text.

    pandas' own CSV and ``to_numeric`` parsers are not correctly rounded (7,135 of 15,000 17-digit
    values came out 1 ulp off, up to 1.3e-13 relative), and mashr's enriched fit moves by 1e-2 under
    such changes; with this both engines fit the same bits R's ``read.csv`` produces.
    """
    text = values.to_numpy(dtype=object)
    return np.vectorize(_parse_float, otypes=[np.float64])(text) if text.size else np.zeros(text.shape)


def _numeric(df: pd.DataFrame, cols: list[str], path, ids: pd.Series) -> np.ndarray:
    """Text columns (a CSV read as str) are parsed exactly; numeric columns are taken as they are."""
    values = df[cols]
    if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in values.dtypes):
        out = values.to_numpy(dtype=np.float64)
    else:
        out = exact_floats(values.astype(str) if any(t != object for t in values.dtypes) else values)
    bad = np.argwhere(~np.isfinite(out))
    if len(bad):
        problems = [f"row {r + 1} ({ids.iloc[r]!r}), column {cols[c]!r}: {df[cols[c]].iloc[r]!r} is not a finite number"
                    for r, c in bad[:10]]
        raise InputError(f"{path}: {len(bad)} missing or non-numeric values (NaN/Inf are not allowed)", problems)
    return out


def read_daywise_table(path: str | os.PathLike) -> DaywiseTable:
    """Validated daywise table from a CSV file (see :func:`daywise_table`)."""
    return daywise_table(_read_csv(path), path)


def daywise_table(df: pd.DataFrame, path: str | os.PathLike = "table") -> DaywiseTable:
    """Validated daywise table: unique ids, matching betahat/se day columns, finite effects, se > 0.

    ``path`` only names the table in errors."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{path}: expected a pandas DataFrame, got {type(df).__name__}")
    cols = list(df.columns)
    if not cols or cols[0] not in KINDS:
        raise InputError(f"{path}: the first column must be 'gene' or 'guide' (the effect id), found {cols[:1]}")
    kind = cols[0]
    id_cols = [c for c in cols if not re.match(r"^(betahat|se)_", c)]
    b_days, s_days = day_columns(cols, "betahat_"), day_columns(cols, "se_")
    if not b_days:
        raise InputError(f"{path}: no 'betahat_<day>' columns")
    if b_days != s_days:
        raise InputError(f"{path}: the day columns of betahat and se do not match: betahat_ has {b_days}, se_ has {s_days} "
                         "(same days, same order expected)")
    if len(set(b_days)) != len(b_days):
        raise InputError(f"{path}: duplicated day columns {b_days}")
    if len(df) == 0:
        raise InputError(f"{path}: no data rows")
    ids = df[kind]
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        rows = [f"row {i + 1}: {v!r}" for i, v in dup.head(10).items()]
        raise InputError(f"{path}: column {kind!r} has {dup.nunique()} duplicated ids", rows)
    if (ids == "").any():
        raise InputError(f"{path}: column {kind!r} is empty in row {int(np.flatnonzero(ids == '')[0]) + 1}")
    bhat = _numeric(df, [f"betahat_{d}" for d in b_days], path, ids)
    shat = _numeric(df, [f"se_{d}" for d in b_days], path, ids)
    bad = np.argwhere(shat <= 0)
    if len(bad):
        problems = [f"row {r + 1} ({ids.iloc[r]!r}), column 'se_{b_days[c]}': {shat[r, c]!r}" for r, c in bad[:10]]
        raise InputError(f"{path}: {len(bad)} standard errors are not positive", problems)
    for name, values, ok in (("betahat", bhat, np.abs(bhat) <= VALUE_LIMIT),
                             ("se", shat, (shat >= 1 / VALUE_LIMIT) & (shat <= VALUE_LIMIT))):
        bad = np.argwhere(~ok)
        if len(bad):
            problems = [f"row {r + 1} ({ids.iloc[r]!r}), column '{name}_{b_days[c]}': {values[r, c]!r}" for r, c in bad[:10]]
            raise InputError(f"{path}: {len(bad)} {name} values outside [{'-' if name == 'betahat' else ''}"
                             f"{1 / VALUE_LIMIT if name == 'se' else VALUE_LIMIT:g}, {VALUE_LIMIT:g}]: their squares "
                             "overflow or vanish in double precision (a unit or export error?)", problems)
    return DaywiseTable(kind, df[id_cols].reset_index(drop=True), b_days, bhat, shat)


def posterior_table(ids: pd.DataFrame, days: list[str], fields: dict[str, np.ndarray]) -> pd.DataFrame:
    """id columns, then ``<field>_<day>`` for each field in ``fields`` (e.g. postmean, postsd, lfsr)."""
    parts = [ids.reset_index(drop=True)]
    for name, values in fields.items():
        parts.append(pd.DataFrame(values, columns=[f"{name}_{d}" for d in days]))
    return pd.concat(parts, axis=1)


def read_posterior_table(path: str | os.PathLike, id_columns: tuple[str, ...]) -> tuple[pd.DataFrame, list[str], dict[str, np.ndarray]]:
    """A mash output table: (ids, days, {postmean, postsd, lfsr} arrays), validated like the inputs."""
    return posterior_fields(_read_csv(path), id_columns, path)


def posterior_fields(df: pd.DataFrame, id_columns: tuple[str, ...], path: str | os.PathLike = "table"
                     ) -> tuple[pd.DataFrame, list[str], dict[str, np.ndarray]]:
    """(ids, days, {postmean, postsd, lfsr} arrays) of a posterior DataFrame; ``path`` names it in errors."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{path}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in id_columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing id column(s) {missing}")
    days = day_columns(list(df.columns), "postmean_")
    for f in POSTERIOR_FIELDS[1:]:
        if day_columns(list(df.columns), f"{f}_") != days:
            raise InputError(f"{path}: the {f}_ day columns do not match the postmean_ days {days}")
    if not days:
        raise InputError(f"{path}: no 'postmean_<day>' columns")
    key = df[id_columns[0]]
    fields = {f: _numeric(df, [f"{f}_{d}" for d in days], path, key) for f in POSTERIOR_FIELDS}
    if np.any(fields["postsd"] < 0) or np.any((fields["lfsr"] < 0) | (fields["lfsr"] > 1)):
        raise InputError(f"{path}: postsd must be >= 0 and lfsr within [0, 1]")
    return df[list(id_columns)].reset_index(drop=True), days, fields
