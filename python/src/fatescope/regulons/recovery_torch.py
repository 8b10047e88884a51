"""AUCs of many gene sets at once on a torch device (CUDA when there is one): the GPU path of pruning.

The same formula as ``recovery.aucs`` (ctxcore's): AUC[s, m] = sum_g w_g max(c - r[g, m], 0) /
((c + 1) sum_g w_g), here for a batch of gene sets padded to the longest (padding has weight 0).
Depths are integers and the sums are float64, so the numbers equal the CPU path's to rounding
(exactly when the weights are ones).
"""
from __future__ import annotations

import numpy as np

BATCH_BYTES = 256 * 2**20  # float64 depths of one batch: sets x longest set x motifs


def batched_aucs(ranks: np.ndarray, row_sets: list[np.ndarray], weight_sets: list[np.ndarray], cutoff: int,
                 device: str) -> np.ndarray:
    """(sets x motifs) AUCs of gene sets given by their ``ranks`` rows, computed on ``device``."""
    import torch

    dev = torch.device(device)
    db = torch.as_tensor(np.ascontiguousarray(ranks), device=dev)
    out = np.empty((len(row_sets), ranks.shape[1]))
    longest = max((len(r) for r in row_sets), default=1)
    per_batch = max(1, BATCH_BYTES // (8 * longest * ranks.shape[1]))
    for start in range(0, len(row_sets), per_batch):
        rows, weights = row_sets[start:start + per_batch], weight_sets[start:start + per_batch]
        width = max(len(r) for r in rows)
        index = np.zeros((len(rows), width), dtype=np.int64)
        w = np.zeros((len(rows), width))
        for i, (r, wt) in enumerate(zip(rows, weights)):
            index[i, :len(r)], w[i, :len(r)] = r, wt
        depth = (cutoff - db[torch.as_tensor(index, device=dev)].to(torch.int32)).clamp_(min=0).to(torch.float64)
        wt = torch.as_tensor(w, device=dev)
        auc = torch.einsum("sg,sgm->sm", wt, depth) / ((cutoff + 1) * wt.sum(1, keepdim=True))
        out[start:start + len(rows)] = auc.cpu().numpy()
    return out
