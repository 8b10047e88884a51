"""The R mashr backend (``--engine r``): same interface, same numbers. Skips without R + mashr."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from mash_reference import conditions, gene_table, matrix

from fatescope.cli import main
from fatescope.shrink.engine_r import r_available, run_mash_r
from fatescope.shrink.modes import MashSettings, run_mash

AVAILABLE, WHY = r_available()
needs_r = pytest.mark.skipif(not AVAILABLE, reason=f"R backend unavailable: {WHY}")


@pytest.mark.skipif(AVAILABLE, reason="R and mashr are installed")
def test_r_engine_without_r_fails_cleanly(tmp_path):
    res = CliRunner().invoke(main, ["mash", "--input", str(gene_table(tmp_path / "g.csv")), "--engine", "r",
                                    "--outdir", str(tmp_path / "out")])
    assert res.exit_code == 1 and "--engine r needs R with mashr" in res.output
    assert not (tmp_path / "out").exists()


@needs_r
@pytest.mark.parametrize("mode", ["conservative", "enriched"])
def test_r_engine_matches_python_engine(mode):
    b, s = matrix("input_Bhat.csv"), matrix("input_Shat.csv")
    settings = MashSettings(mode=mode)
    r, py = run_mash_r(b, s, conditions(), settings), run_mash(b, s, conditions(), settings)
    assert list(r.fit.ulist) == list(py.fit.ulist)
    assert abs(r.fit.loglik - py.fit.loglik) < 1e-3
    for a, c in ((r.posterior.mean, py.posterior.mean), (r.posterior.sd, py.posterior.sd), (r.posterior.lfsr, py.posterior.lfsr)):
        np.testing.assert_allclose(a, c, atol=1e-4)
