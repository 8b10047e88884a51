"""The cells' likelihood inputs, gathered for a set of cells (``CellBatch``), and the training minibatches.

A minibatch of random cells reads its inputs (fate probabilities, day, replicate, burden and guide
entries) from random places in memory; at 100,000 cells those cache misses cost more than the rest of
a training step. ``EpochBatches`` therefore gathers all cells once in a shuffled order and hands out
windows of that copy, which are slices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import FateData

RESHUFFLE_EPOCHS = 4  # epochs between two shuffled copies (one costs about as much as an epoch of random gathers)


@dataclass
class GuideEntries:
    """The (cell, slot) pairs that can move a logit (guide id > 0, mask != 0) as compressed rows over cells.

    Cell i's entries are ``ptr[i]:ptr[i + 1]``; ``rows`` is the row of (guide, day of the cell) in the
    flat beta table, ``weight`` the mask value. With MOI ~5 of K_max = 20 slots this is a quarter of
    the padded (cell, slot) grid, and the dominant gather of a training step shrinks with it; slots
    with guide 0 (NTC, padding) hit beta's hard-zero row, so dropping them changes no logit.
    """
    ptr: torch.Tensor            # (N + 1,) int64
    rows: torch.Tensor           # (nnz,) int64 (index_add with int32 indices is ~10x slower on the CPU)
    weight: torch.Tensor | None  # (nnz,) float32, or None when every weight is 1 (the encoding's 0/1 mask)

    @classmethod
    def from_data(cls, data: FateData) -> GuideEntries:
        keep = (data.guide_ids > 0) & (data.mask != 0)
        count = keep.sum(1)
        ptr = torch.zeros(data.n_cells + 1, dtype=torch.long, device=keep.device)
        ptr[1:] = count.cumsum(0)
        rows = data.guide_ids[keep].long() * data.n_days + data.day.repeat_interleave(count)
        weight = data.mask[keep]
        return cls(ptr, rows, None if bool((weight == 1).all()) else weight)

    def select(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(ptr over ``idx``, position in ``idx``, table row, weight or None) of every entry of the cells ``idx``."""
        start = self.ptr.index_select(0, idx)
        count = self.ptr.index_select(0, idx + 1) - start
        pos = torch.repeat_interleave(count)
        ptr = torch.zeros(idx.shape[0] + 1, dtype=torch.long, device=idx.device)
        ptr[1:] = torch.cumsum(count, 0)
        entry = torch.arange(pos.shape[0], device=pos.device) + (start - ptr[:-1]).index_select(0, pos)
        return ptr, pos, self.rows.index_select(0, entry), None if self.weight is None else self.weight.index_select(0, entry)


@dataclass
class CellBatch:
    """The likelihood's inputs for a set of cells, in one order.

    ``group`` is the cell's day * n_replicates + replicate (its column in the nuisance table); the
    cell k's guide entries are ``ptr[k]:ptr[k + 1]`` of ``pos`` (= k), ``rows`` (guide * n_days + day)
    and ``weight`` (the mask value, None when all are 1).
    """
    group: torch.Tensor          # (B,) int64
    burden: torch.Tensor         # (B,) centred guide burden
    probs: torch.Tensor          # (F + 1, B) fate probabilities, fates first (see ``model.cell_logits``)
    ptr: torch.Tensor            # (B + 1,) int64
    pos: torch.Tensor            # (nnz,) int64
    rows: torch.Tensor           # (nnz,) int64
    weight: torch.Tensor | None  # (nnz,) or None

    @property
    def size(self) -> int:
        return self.group.shape[0]

    @classmethod
    def gather(cls, data: FateData, idx: torch.Tensor) -> CellBatch:
        """The cells ``idx`` of ``data`` (any order, repeats allowed)."""
        ptr, pos, rows, weight = data.entries.select(idx)
        return cls(data.group.index_select(0, idx), data.burden_centered.index_select(0, idx),
                   data.probs.T.index_select(1, idx), ptr, pos, rows, weight)

    def window(self, start: int, size: int) -> CellBatch:
        """Cells ``start, start + 1, ...`` (``size`` of them, wrapping around the end): slices, no gathers."""
        end = start + size
        if end <= self.size:
            return self._slice(start, end)
        return CellBatch.concat(self._slice(start, self.size), self._slice(0, end - self.size))

    def _slice(self, start: int, end: int) -> CellBatch:
        first, last = int(self.ptr[start]), int(self.ptr[end])
        return CellBatch(self.group[start:end], self.burden[start:end], self.probs[:, start:end],
                         self.ptr[start:end + 1] - first, self.pos[first:last] - start, self.rows[first:last],
                         None if self.weight is None else self.weight[first:last])

    @staticmethod
    def concat(a: CellBatch, b: CellBatch) -> CellBatch:
        return CellBatch(torch.cat([a.group, b.group]), torch.cat([a.burden, b.burden]), torch.cat([a.probs, b.probs], 1),
                         torch.cat([a.ptr, b.ptr[1:] + a.ptr[-1]]), torch.cat([a.pos, b.pos + a.size]),
                         torch.cat([a.rows, b.rows]), None if a.weight is None else torch.cat([a.weight, b.weight]))


class EpochBatches:
    """Seeded minibatches of ``batch_size`` cells as ``CellBatch`` windows of a shuffled copy of all cells.

    Each epoch takes floor(N / B) consecutive windows from a uniformly random start (wrapping around),
    so in every step each cell is in the batch with the same probability B / N, and no cell twice in an
    epoch; the copy is reshuffled every ``reshuffle_epochs`` epochs, so which cells share a batch keeps
    changing. Against gathering random cells every step (the same distribution of each step's batch)
    this saves 0.5-0.7 ms of a 4.7 ms step at 100,000 cells on the CPU (docs/fate.md, Scale).
    """

    def __init__(self, data: FateData, batch_size: int, seed: int, reshuffle_epochs: int = RESHUFFLE_EPOCHS):
        self.data, self.b, self.reshuffle_epochs = data, min(batch_size, data.n_cells), reshuffle_epochs
        self.gen = torch.Generator().manual_seed(seed)
        self.cells: CellBatch | None = None
        self.epochs, self.starts = 0, []

    def next(self) -> CellBatch:
        n = self.data.n_cells
        if not self.starts:
            if self.epochs % self.reshuffle_epochs == 0:
                self.cells = CellBatch.gather(self.data, torch.randperm(n, generator=self.gen).to(self.data.day.device))
            self.epochs += 1
            first = int(torch.randint(n, (1,), generator=self.gen))
            self.starts = [(first + k * self.b) % n for k in range(n // self.b)][::-1]
        return self.cells.window(self.starts.pop(), self.b)
