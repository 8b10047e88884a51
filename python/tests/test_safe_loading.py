"""No file a user can hand us is unpickled: fate-model checkpoints are tensors + JSON read with
``weights_only=True``; a crafted checkpoint that would run code is refused and runs nothing; and no
loader in the package can execute code from a file (source scan)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fatescope
from fatescope.cli import main
from fatescope.errors import InputError
from fatescope.fate import checkpoint

SRC = Path(fatescope.__file__).parent


class _Payload:
    """Unpickling this calls Path.touch(marker): harmless, and visible if it ever runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(tmp_path: Path, name: str = "fate_model.pt") -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / name
    torch.save({"format": checkpoint.FORMAT, "meta": "{}", "params": {}, "constraints": {}, "x": _Payload(marker)}, path)
    return path, marker


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    path, marker = _crafted(tmp_path)
    with pytest.raises(InputError, match="fate_model.pt: not a fatescope fate-model checkpoint, or one holding code"):
        checkpoint.read(path)
    assert not marker.exists()
    with pytest.raises(InputError):
        checkpoint.load(path)
    assert not marker.exists()
    with pytest.raises(InputError, match="fate_model.pt: not a fatescope fate-model checkpoint, or one holding code"):
        fatescope.tl.FateFit.load(path)
    assert not marker.exists()


def test_diagnostics_refuses_a_crafted_or_foreign_model(tmp_path):
    path, marker = _crafted(tmp_path)
    table = tmp_path / "model.csv"
    table.write_text("gene,theta\nA,1\n")
    for model in (path, table, tmp_path / "missing.pt"):
        res = CliRunner().invoke(main, ["diagnostics", "--input", str(tmp_path / "cells.h5ad"), "--model", str(model),
                                        "--theta-summary", str(tmp_path / "t.npz"), "--outdir", str(tmp_path / "dg")])
        assert res.exit_code != 0 and str(model) in res.output and "Traceback" not in res.output, res.output
    assert not marker.exists() and not (tmp_path / "dg").exists()


def test_an_old_pickled_format_is_refused_with_its_name(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "fatescope.fate-model/1", "param_store": {}}, path)
    with pytest.raises(InputError, match="format 'fatescope.fate-model/1', expected 'fatescope.fate-model/3'"):
        checkpoint.read(path)


UNSAFE = [
    (r"weights_only\s*=\s*False", "torch.load must use weights_only=True"),
    (r"allow_pickle\s*=\s*True", "np.load must keep allow_pickle=False"),
    (r"\bpickle\.loads?\(|\bcloudpickle\b|\bdill\b|\bjoblib\.load\(", "no unpickling"),
    (r"\byaml\.(?:load|unsafe_load|full_load)\(", "yaml.safe_load only"),
    (r"(?<![.\w])(?:eval|exec)\(", "no eval/exec"),
    (r"read_pickle\(", "no pandas.read_pickle"),
]


def unsafe_loads(text: str) -> list[str]:
    """(line: why) of every way ``text`` could execute code from a file."""
    found = [(m.start(), why) for pattern, why in UNSAFE for m in re.finditer(pattern, text)]
    for call, needs in ((r"torch\.load\(", "weights_only=True"), (r"\bnp\.load\(", "allow_pickle=False")):
        for m in re.finditer(call, text):
            if needs not in text[m.start():text.find(")", m.start()) + 1]:
                found.append((m.start(), f"{m.group(0)} without {needs}"))
    return [f"{text.count(chr(10), 0, at) + 1}: {why}" for at, why in sorted(found)]


def test_no_loader_in_the_package_can_execute_code_from_a_file():
    problems = [f"{path.relative_to(SRC)}:{hit}" for path in sorted(SRC.rglob("*.py"))
                for hit in unsafe_loads(path.read_text())]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_unsafe_code():
    bad = "x = torch.load(p)\ny = np.load(q, allow_pickle=True)\nz = yaml.load(t)\nw = pickle.load(f)\n"
    hits = unsafe_loads(bad)
    assert sorted(hits) == ["1: torch.load( without weights_only=True", "2: np.load must keep allow_pickle=False",
                            "2: np.load( without allow_pickle=False", "3: yaml.safe_load only", "4: no unpickling"], hits
    assert unsafe_loads("model.eval()\nx = eval(s)\n") == ["2: no eval/exec"]
    assert unsafe_loads("torch.load(p, weights_only=True)\nnp.load(q, allow_pickle=False)\nyaml.safe_load(t)\n") == []
