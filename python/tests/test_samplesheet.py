"""Samplesheet validation: the schema's rules, every problem reported at once."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_mtx, write_sheet

from fatescope.errors import InputError
from fatescope.io.samplesheet import load_schema, validate_samplesheet


@pytest.fixture
def counts_dir(tmp_path, rng):
    from conftest import counts_matrix
    return write_mtx(tmp_path / "m", counts_matrix(rng, 5, 8), [f"G{i}" for i in range(8)], [f"B{i}" for i in range(5)])


def test_valid_sheet_resolves_paths(tmp_path, counts_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sheet = write_sheet(tmp_path / "s.csv", [{"sample": "a", "counts": "m", "batch": "b1", "day": "d0", "replicate": "r1"},
                                             {"sample": "b", "counts": "m", "batch": "b2", "day": "2.5", "replicate": "r1"}])
    table = validate_samplesheet(sheet).table
    assert list(table["sample"]) == ["a", "b"]
    assert all(Path(p).is_absolute() and Path(p) == counts_dir for p in table["counts"])


def test_four_problems_in_one_error(tmp_path, counts_dir):
    """Missing column, duplicate sample, missing file and bad day: one error naming all four rows."""
    sheet = tmp_path / "bad.csv"
    sheet.write_text("sample,counts,batch,day\n"
                     f"a,{counts_dir},b1,d0\n"
                     f"a,{counts_dir},b1,d1\n"
                     f"c,{tmp_path}/nope,b1,dX\n")
    with pytest.raises(InputError) as exc:
        validate_samplesheet(sheet)
    msg = str(exc.value)
    assert msg.startswith(f"{sheet}: samplesheet has 4 problem(s)")
    assert "required column 'replicate' is missing" in msg
    assert "row 2 (line 3), field 'sample': duplicate sample 'a' (first seen in row 1)" in msg
    assert "row 3 (line 4), field 'counts'" in msg and "nope' does not exist" in msg
    assert "row 3 (line 4), field 'day': value 'dX' is not valid" in msg


@pytest.mark.parametrize("field,value,needle", [
    ("sample", "has space", "field 'sample': value 'has space' is not valid"),
    ("day", "day-one", "field 'day': value 'day-one' is not valid"),
    ("guides", "guides.txt", "field 'guides'"),
    ("fate_probs", "probs.parquet", "field 'fate_probs'"),
    ("batch", "", "field 'batch': is empty; a value is required"),
])
def test_each_rule(tmp_path, counts_dir, field, value, needle):
    row = {"sample": "a", "counts": str(counts_dir), "batch": "b1", "day": "d0", "replicate": "r1", field: value}
    with pytest.raises(InputError, match="problem") as exc:
        validate_samplesheet(write_sheet(tmp_path / "s.csv", [row]))
    assert needle in str(exc.value)


def test_counts_format_checked(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "x.loom").write_text("")
    rows = [{"sample": "a", "counts": str(tmp_path / "empty_dir"), "batch": "b", "day": "0", "replicate": "1"},
            {"sample": "b", "counts": str(tmp_path / "x.loom"), "batch": "b", "day": "0", "replicate": "1"}]
    with pytest.raises(InputError) as exc:
        validate_samplesheet(write_sheet(tmp_path / "s.csv", rows))
    assert "lacks matrix.mtx[.gz]" in str(exc.value) and "unknown counts format" in str(exc.value)


def test_ragged_and_empty_sheets(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        validate_samplesheet(tmp_path / "empty.csv")
    (tmp_path / "ragged.csv").write_text("sample,counts\na,b,c\n")
    with pytest.raises(InputError, match=r"row 1 \(line 2\) has 3 fields, the header has 2"):
        validate_samplesheet(tmp_path / "ragged.csv")
    with pytest.raises(InputError, match="not found"):
        validate_samplesheet(tmp_path / "absent.csv")


def test_schema_is_nf_schema_style():
    schema = load_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["uniqueEntries"] == ["sample"]
    assert set(schema["items"]["required"]) == {"sample", "counts", "batch", "day", "replicate"}
    assert {"guides", "fate_probs"} <= set(schema["items"]["properties"])
