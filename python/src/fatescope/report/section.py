"""One report section: its id, heading, HTML body and the key numbers it puts in report_summary.json."""
from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Section:
    id: str
    title: str
    body: str
    ran: bool = True
    numbers: dict = field(default_factory=dict)


def not_run(id: str, title: str, why: str) -> Section:
    """The placeholder of a section whose stage(s) did not run."""
    return Section(id, title, f'<p class="notrun">Not run: {html.escape(why)}</p>', ran=False)


def image(b64: str, alt: str, caption: str | None = None) -> str:
    """An embedded PNG with alt text and an optional caption."""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(alt, quote=True)}">{cap}</figure>'


def para(text: str, cls: str | None = None) -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<p{c}>{html.escape(text)}</p>"


def heading(text: str) -> str:
    return f"<h3>{html.escape(text)}</h3>"


def details(summary: str, body: str) -> str:
    """A collapsed block, for long tables (all parameters)."""
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"
