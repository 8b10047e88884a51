"""The report in a real browser (headless Chromium): every section and image renders, images decode to a
non-zero size, and the inline sort script reorders a table (driven by the '#sort=' hash)."""
from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from report_results import fate_chain

from fatescope.cli.report import run as report_run
from fatescope.report.page import SECTION_IDS

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


class Dom(HTMLParser):
    """Sections, images, the body's attributes and the text of the hits table's rows."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.body, self.rows = [], [], {}, []
        self._in_hits = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.images.append(a)
        elif tag == "body":
            self.body = a
        elif tag == "table":
            self._in_hits = a.get("id") == "hits-table"
        elif tag == "tr" and self._in_hits:
            self.rows.append([])
        elif tag == "td" and self._in_hits:
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_hits = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def rendered(page, tmp_path, fragment: str = "") -> Dom:
    """The DOM after load, with the page's scripts run."""
    out = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + fragment],
                         capture_output=True, text=True, timeout=60, check=True)
    dom = Dom()
    dom.feed(out.stdout)
    return dom


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = fate_chain(tmp_path_factory.mktemp("run"))
    return report_run(str(root), outdir=str(tmp_path_factory.mktemp("rep") / "report"))


def test_sections_and_images_render(page, tmp_path):
    dom = rendered(page, tmp_path)
    assert dom.body.get("data-ready") == "1"  # the inline script ran to its end
    assert dom.sections == list(SECTION_IDS)
    assert len(dom.images) == page.read_text().count("<img ") >= 4
    for img in dom.images:
        assert int(img["data-natural-width"]) > 0 and int(img["data-natural-height"]) > 0, img["alt"]


def test_sort_script_reorders_the_hits_table(page, tmp_path):
    genes = [row[1] for row in rendered(page, tmp_path).rows[1:]]  # first row: the header
    assert genes != sorted(genes, reverse=True)  # ranked order, so sorting has something to do
    by_gene = [row[1] for row in rendered(page, tmp_path, "#sort=hits-table:gene:desc").rows[1:]]
    assert by_gene == sorted(genes, reverse=True)
