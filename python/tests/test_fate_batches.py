"""Minibatches of the fate model: a CellBatch window (slices of a shuffled copy, wrapping around) holds
exactly what gathering the same cells holds, and EpochBatches draws every cell equally often, none twice
in an epoch, reproducibly for a seed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fatescope.fate.batches import CellBatch, EpochBatches
from fatescope.fate.encoding import encode
from fatescope.fate.model import FateData
from fatescope.fate.synthetic import simulated_cells


@pytest.fixture(scope="module")
def data():
    adata, _, _ = simulated_cells(seed=3, n_cells=500, n_perturbed_genes=8, guides_per_gene=3, n_ntc_guides=4, moi=4)
    return FateData.from_encoding(encode(adata))


def assert_same(a: CellBatch, b: CellBatch) -> None:
    for name in ("group", "burden", "probs", "ptr", "pos", "rows"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.weight is None) == (b.weight is None)
    if a.weight is not None:
        assert torch.equal(a.weight, b.weight)


def test_gather_holds_each_cells_inputs(data):
    idx = torch.tensor([7, 0, 7, 499, 3])
    cells = data.as_cells(idx)
    assert cells.size == 5 and torch.equal(cells.probs, data.probs[idx].T)
    assert torch.equal(cells.group, data.day[idx] * data.n_replicates + data.replicate[idx])
    for k, i in enumerate(idx.tolist()):  # the cell's guide entries: its nonzero slots, as rows guide * D + day
        ids = data.guide_ids[i][(data.guide_ids[i] > 0) & (data.mask[i] != 0)].long()
        mine = slice(int(cells.ptr[k]), int(cells.ptr[k + 1]))
        assert torch.equal(cells.rows[mine], ids * data.n_days + data.day[i]) and torch.all(cells.pos[mine] == k)


@pytest.mark.parametrize("start,size", [(0, 100), (120, 200), (450, 120), (499, 1), (300, 500)])
def test_window_is_the_gather_of_the_same_cells(data, start, size):
    perm = torch.randperm(data.n_cells, generator=torch.Generator().manual_seed(1))
    shuffled = CellBatch.gather(data, perm)
    want = CellBatch.gather(data, perm[(torch.arange(size) + start) % data.n_cells])
    assert_same(shuffled.window(start, size), want)


def test_epoch_batches_cover_cells_evenly_and_reproducibly(data):
    keyed = dataclasses.replace(data, burden_centered=torch.arange(data.n_cells, dtype=torch.float32))  # burden = cell id
    per_epoch, epochs = data.n_cells // 120, 200
    batches = EpochBatches(keyed, 120, seed=0, reshuffle_epochs=2)
    counts, copies = np.zeros(data.n_cells), []
    for epoch in range(epochs):
        seen = torch.cat([batches.next().burden for _ in range(per_epoch)]).long()
        assert len(set(seen.tolist())) == per_epoch * 120  # no cell twice in an epoch
        np.add.at(counts, seen.numpy(), 1)
        copies.append(batches.cells.burden)
    expected = epochs * per_epoch * 120 / data.n_cells
    assert counts.min() > 0.75 * expected and counts.max() < 1.25 * expected  # uniform (binomial sd ~0.06 x expected)
    assert torch.equal(copies[0], copies[1]) and not torch.equal(copies[1], copies[2])  # reshuffled every 2 epochs

    def draws(seed):
        b = EpochBatches(keyed, 120, seed=seed, reshuffle_epochs=2)
        return torch.cat([b.next().burden for _ in range(3 * per_epoch)])
    assert torch.equal(draws(0), draws(0)) and not torch.equal(draws(0), draws(1))
