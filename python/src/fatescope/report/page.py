"""Assemble the report: the sections in order, the summary numbers, and the self-contained HTML page."""
from __future__ import annotations

import html
from datetime import datetime, timezone

from .. import __version__
from . import sections_cells as cells
from . import sections_fate as fate
from .collect import RunData
from .section import Section

SECTION_IDS = ("summary", "qc", "embedding", "integration", "regulons", "fate-probs", "fate-effects", "volcano",
               "mash-modes", "diagnostics", "recovery")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:15px;line-height:1.45;color:#1f2933;
 max-width:1040px;margin:0 auto;padding:0 24px 48px}
h1{margin-bottom:4px}h2{border-bottom:2px solid #d9e2ec;padding-bottom:4px;margin-top:36px}h3{margin:18px 0 6px}
nav ul{columns:2;padding-left:18px}.meta{color:#52606d}.notrun{color:#7b8794;font-style:italic}.note{color:#8d5b00}
figure{margin:12px 0}img{max-width:100%;height:auto}figcaption{color:#52606d;font-size:13px}
.tablewrap{overflow-x:auto;margin:8px 0}table{border-collapse:collapse;font-size:14px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #d9e2ec;padding:3px 8px;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f4f8;cursor:pointer;user-select:none}th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafbfc}details{margin:10px 0}summary{cursor:pointer;font-weight:600}
"""

# Click a header to sort by it (again to reverse); '#sort=<table id>:<column>[:desc]' sorts on load.
# After load each image records its natural size (data-natural-width/height), so a check can see it decoded.
JS = """
function sortTable(th, desc){
  const table=th.closest('table'), body=table.tBodies[0], col=[...th.parentNode.children].indexOf(th);
  if(desc===undefined){desc=th.classList.contains('asc');}
  const rows=[...body.rows], key=r=>r.cells[col].dataset.sort||'';
  const numeric=rows.every(r=>key(r)===''||!isNaN(parseFloat(key(r))));
  rows.sort((a,b)=>{let x=key(a),y=key(b);
    if(numeric){x=x===''?Infinity:parseFloat(x);y=y===''?Infinity:parseFloat(y);return x-y;}
    return x.localeCompare(y,undefined,{numeric:true});});
  if(desc){rows.reverse();}
  rows.forEach(r=>body.appendChild(r));
  th.parentNode.querySelectorAll('th').forEach(h=>h.classList.remove('asc','desc'));
  th.classList.add(desc?'desc':'asc');
}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
window.addEventListener('load',()=>{
  document.querySelectorAll('img').forEach(i=>{i.dataset.naturalWidth=i.naturalWidth;i.dataset.naturalHeight=i.naturalHeight;});
  const m=decodeURIComponent(location.hash).match(/^#sort=([^:]+):([^:]+)(:desc)?$/);
  if(m){const t=document.getElementById(m[1]);
    const th=t&&[...t.tHead.rows[0].cells].find(h=>h.textContent===m[2]);
    if(th){sortTable(th,!!m[3]);}}
  document.body.dataset.ready='1';
});
"""


def build_sections(data: RunData, top_hits: int, lfsr_thresh: float) -> list[Section]:
    """Every section, in page order; stages that did not run give "not run" sections."""
    return [cells.summary(data), cells.qc(data), cells.embedding(data), cells.integration(data),
            cells.regulons(data, top_hits), fate.fate_probabilities(data), fate.fate_effects(data, top_hits), fate.volcano(data, lfsr_thresh),
            fate.mash_modes(data), fate.diagnostics(data), fate.recovery(data)]


def summary_numbers(data: RunData, sections: list[Section], title: str, top_hits: int, lfsr_thresh: float) -> dict:
    """The key numbers of the report, machine-readable (report_summary.json)."""
    by_id = {s.id: s for s in sections}
    rec = data.recovery or {}
    return {
        "title": title,
        "results": str(data.root),
        "fatescope_version": __version__,
        "sections": [s.id for s in sections if s.ran],
        "skipped": [s.id for s in sections if not s.ran],
        "run": by_id["summary"].numbers,
        "qc": by_id["qc"].numbers or None,
        "embedding": by_id["embedding"].numbers or None,
        "integration": by_id["integration"].numbers or None,
        "regulons": by_id["regulons"].numbers or None,
        "hits": fate.hit_numbers(data, lfsr_thresh, top_hits) if (data.hits is not None or data.mash) else None,
        "mash_modes": by_id["mash-modes"].numbers or None,
        "diagnostics": by_id["diagnostics"].numbers or None,
        "recovery": by_id["recovery"].numbers or None,
        "regulon_recovery": rec.get("regulons") if isinstance(rec.get("regulons"), dict) else None,
    }


def render(sections: list[Section], title: str, results: str) -> str:
    """The whole page: inline CSS and JS, figures as data URIs; nothing fetched from elsewhere."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a>{"" if s.ran else " (not run)"}</li>'
                  for s in sections)
    body = "\n".join(f'<section id="{s.id}" data-ran="{str(s.ran).lower()}"><h2>{html.escape(s.title)}</h2>{s.body}</section>'
                     for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="meta">fatescope {html.escape(__version__)} &middot; {html.escape(results)} &middot; {stamp}</p>'
            f"<nav><ul>{toc}</ul></nav>\n{body}\n<script>{JS}</script></body></html>\n")
