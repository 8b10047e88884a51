"""One source of defaults: every stage's API function and its CLI command agree, and the layers point one way."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import fatescope as fs
from fatescope.cli import command_for

SRC = Path(fs.__file__).parent
# stage command -> its API function
PAIRS = {"qc": fs.pp.qc, "ambient": fs.pp.ambient, "integrate": fs.tl.integrate, "embed": fs.tl.embed,
         "grn": fs.tl.grn, "modules": fs.tl.modules, "prune": fs.tl.prune, "aucell": fs.tl.aucell,
         "fate-fit": fs.tl.fate_fit, "mash": fs.tl.mash, "aggregate": fs.tl.aggregate, "rank": fs.tl.rank_hits}

# the only options whose CLI default differs from the API's, and why
DIFFERENT = {("mash", "mode"): "the CLI runs a comma-separated list of modes, each an API call with one mode",
             ("aucell", "layer"): "the command line spells 'adata.X' as an empty string, the API as None"}


@pytest.mark.parametrize("stage", sorted(PAIRS))
def test_cli_options_take_the_api_defaults(stage):
    keywords = {name: p for name, p in inspect.signature(PAIRS[stage]).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    shared = [o for o in command_for(stage).params if isinstance(o, click.Option) and o.name in keywords]
    assert shared, f"{stage}: no option shares a name with the API's keywords"
    for option in shared:
        if (stage, option.name) in DIFFERENT:
            continue
        api = keywords[option.name].default
        assert option.default == api or (option.multiple and tuple(option.default or ()) == tuple(api or ())), \
            f"{stage} --{option.name}: CLI default {option.default!r} vs API default {api!r}"


def test_dependencies_point_one_way():
    """cli -> api -> science: nothing outside cli/ imports the CLI, and the science packages do not import the API."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        text = path.read_text()
        if rel.parts[0] != "cli" and rel.name != "__main__.py" and re.search(r"from (fatescope|\.+)\s*\.?cli\b|import fatescope\.cli", text):
            offenders.append(f"{rel}: imports the CLI")
        if rel.parts[0] in {"cells", "regulons", "fate", "shrink", "io", "simulate"} and \
                re.search(r"from \.\.(tl|pp|pl)\b|from fatescope\.(tl|pp|pl)\b", text):
            offenders.append(f"{rel}: science imports the API")
    assert not offenders, offenders


def test_import_is_light():
    out = subprocess.run([sys.executable, "-c", "import sys, fatescope as fs; fs.tl, fs.pp, fs.pl; "
                          "print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plotting_leaves_the_callers_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import fatescope as fs; fs.pl.umap, fs.pl.volcano; "
            "import fatescope.report.figures; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
