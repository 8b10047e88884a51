"""HTML tables: escaped cells, numbers rounded for reading, headers that sort on click."""
from __future__ import annotations

import html
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def fmt(value) -> str:
    """A cell's text: 4 significant digits, scientific notation for very small or large numbers."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        if v == int(v) and abs(v) < 1e12:
            return str(int(v))
        if abs(v) < 1e-3 or abs(v) >= 1e6:
            return f"{v:.3g}"
        return f"{v:.4g}"
    if value is None:
        return ""
    return str(value)


def _sort_key(value) -> str:
    """data-sort attribute: numbers sort numerically, everything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and not (isinstance(value, float) and math.isnan(value)):
        return repr(float(value))
    return html.escape(fmt(value), quote=True)


def table(df: pd.DataFrame, caption: str | None = None, table_id: str | None = None) -> str:
    """A sortable table of ``df`` (index dropped; name it as a column first if it matters)."""
    # <wbr> after underscores lets long snake_case headers wrap; the header's text is unchanged
    head = "".join(f'<th title="click to sort">{html.escape(str(c)).replace("_", "_<wbr>")}</th>' for c in df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    rows = []
    for rec in df.itertuples(index=False):
        cells = "".join(
            f'<td data-sort="{_sort_key(v)}"{" class=num" if num else ""}>{html.escape(fmt(v))}</td>'
            for v, num in zip(rec, numeric))
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    tid = f' id="{html.escape(table_id)}"' if table_id else ""
    return (f'<div class="tablewrap"><table class="sortable"{tid}>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def key_values(items: Mapping[str, object], caption: str | None = None, key: str = "name", value: str = "value") -> str:
    """Two-column table of a flat mapping."""
    return table(pd.DataFrame({key: list(items), value: [fmt(v) for v in items.values()]}), caption)
