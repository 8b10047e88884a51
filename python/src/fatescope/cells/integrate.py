"""SCALEX-style integration: data preparation, training with early stopping, chunked transform,
imputation and online projection of new batches into a saved model.

The module (network and loss) is ``fatescope.cells.scalex_model``; this file holds the model-level
logic, on arrays; ``fatescope.tl.integrate`` runs it on an AnnData. Reading and writing files is
``fatescope.cli.integrate``'s job, except the checkpoint helpers, which take an explicit folder.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..errors import InputError
from ..logs import get_logger, progress_bar
from .preprocess import apply_maxabs, highly_variable_genes, log_normalize, maxabs_by_batch
from .scalex_model import ScalexVAE

log = get_logger(__name__)
DENSE_LIMIT = 5e7  # training matrices up to this many entries are kept dense on the device


@dataclass(frozen=True)
class ScalexParams:
    n_top_features: int = 2000
    target_sum: float = 1e4
    scale: str = "batch"  # max-abs scaling per batch ("batch") or over all cells ("global")
    n_hidden: int = 1024
    n_latent: int = 10
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 5e-4
    max_iteration: int = 30000
    max_epochs: int = 400  # small data sets overfit over thousands of epochs (CellBench T2: 4,286 at 30,000)
    patience: int = 10
    beta: float = 0.5
    transform_norm: str = "batch"  # encoder batch norm at transform: per-batch statistics or running
    chunk_size: int = 20000
    seed: int = 124


@dataclass
class Prepared:
    """The model's input: scaled HVG matrix (CSR, cells x genes in ``genes`` order) and batches."""
    X: sp.csr_matrix
    batches: np.ndarray
    genes: list[str]
    maxabs: dict[str, np.ndarray] = field(default_factory=dict)


def prepare(counts, genes, batches, params: ScalexParams, hvg: list[str] | None = None,
            maxabs: dict[str, np.ndarray] | None = None) -> Prepared:
    """Normalise and log the counts, keep the HVGs (or the given gene list, absent genes as zeros),
    and max-abs scale them per batch (reusing ``maxabs`` for batches it already holds)."""
    batches = np.asarray(batches).astype(str)
    logX = log_normalize(counts, params.target_sum)
    genes = pd.Index(genes)
    if hvg is None:
        keep = highly_variable_genes(logX, batches, params.n_top_features)
        X, names = logX[:, keep], list(genes[keep])
    else:
        pos = genes.get_indexer(hvg)
        present = pos >= 0
        if present.sum() == 0:
            raise InputError("the cells share none of the model's genes; check the gene identifiers")
        if (~present).any():
            log.warning("%d of the model's %d genes are absent from the new cells and are set to 0", int((~present).sum()), len(hvg))
        sel = sp.csr_matrix((np.ones(present.sum(), np.float32), (pos[present], np.flatnonzero(present))),
                            shape=(len(genes), len(hvg)))
        X, names = sp.csr_matrix(logX @ sel), list(hvg)
    scales = dict(maxabs or {})
    if params.scale == "global" and "*" not in scales:
        scales.update(maxabs_by_batch(X, batches, "global"))
    elif params.scale == "batch":
        missing = [b for b in np.unique(batches) if b not in scales]
        if missing:
            sel = np.isin(batches, missing)
            scales.update(maxabs_by_batch(X[np.flatnonzero(sel)], batches[sel], "batch"))
    return Prepared(apply_maxabs(X, batches, scales), batches, names, scales)


class _Rows:
    """Minibatch rows of the scaled matrix as dense float tensors (dense copy when small)."""

    def __init__(self, X: sp.csr_matrix, device: torch.device):
        self.X, self.device = X, device
        self.dense = torch.from_numpy(X.toarray()).to(device) if X.shape[0] * X.shape[1] <= DENSE_LIMIT else None

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if self.dense is not None:
            return self.dense[torch.from_numpy(idx).to(self.device)]
        return torch.from_numpy(self.X[idx].toarray()).to(self.device)


def train(data: Prepared, domains: list[str], params: ScalexParams, device: torch.device) -> tuple[ScalexVAE, dict]:
    """Fit the VAE as SCALEX does: epochs of shuffled minibatches (last partial one dropped),
    ceil(max_iteration / minibatches per epoch) epochs but at most ``max_epochs``, early stopping on
    the epoch loss with ``patience`` epochs, best weights restored."""
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    codes = torch.from_numpy(pd.Categorical(data.batches, categories=domains).codes.astype(np.int64)).to(device)
    model = ScalexVAE(len(data.genes), len(domains), params.n_hidden, params.n_latent).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay, foreach=True)
    rows = _Rows(data.X, device)
    n = data.X.shape[0]
    bs = min(params.batch_size, n)
    per_epoch = max(n // bs, 1)
    n_epochs = min(int(np.ceil(params.max_iteration / per_epoch)), params.max_epochs)
    best, best_state, wait, history = np.inf, None, 0, []
    model.train()
    bar = progress_bar(n_epochs, desc="integrate: epochs")
    for epoch in range(n_epochs):
        order = rng.permutation(n)
        total = torch.zeros((), device=device)
        for i in range(per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            loss, _, _ = model.loss(rows(idx), codes[torch.from_numpy(idx).to(device)], params.beta)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += loss.detach()
        epoch_loss = float(total) / per_epoch
        history.append(epoch_loss)
        bar.update(1)
        bar.set_postfix(loss=f"{epoch_loss:.2f}")
        if not np.isfinite(epoch_loss):
            log.warning("integrate: loss is not finite at epoch %d; stopping", epoch + 1)
            break
        if epoch_loss < best:
            best, best_state, wait = epoch_loss, copy.deepcopy(model.state_dict()), 0
        else:
            wait += 1
            if wait >= params.patience:
                log.info("integrate: early stop after %d epochs (%d iterations)", epoch + 1, (epoch + 1) * per_epoch)
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    info = dict(epochs=len(history), iterations=len(history) * per_epoch, best_loss=best, loss_history=history)
    return model, info


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


@torch.no_grad()
def encoder_batch_stats(model: ScalexVAE, data: Prepared, chunk_size: int, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per batch, the mean and (biased) variance of the encoder's pre-norm hidden layer, streamed
    over chunks of ``chunk_size`` cells."""
    stats = {}
    for b in np.unique(data.batches):
        rows = np.flatnonzero(data.batches == b)
        s = torch.zeros(model.encoder.fc.out_features, dtype=torch.float64, device=device)
        s2 = torch.zeros_like(s)
        for sel in _chunks(len(rows), chunk_size):
            h = model.encoder.hidden_pre_norm(torch.from_numpy(data.X[rows[sel]].toarray()).to(device)).double()
            s += h.sum(0)
            s2 += (h * h).sum(0)
        mean = s / len(rows)
        stats[b] = (mean.float(), (s2 / len(rows) - mean ** 2).clamp_min(0).float())
    return stats


@torch.no_grad()
def transform(model: ScalexVAE, data: Prepared, params: ScalexParams, device: torch.device) -> np.ndarray:
    """Latent means (cells x n_latent), ``chunk_size`` cells at a time.

    ``transform_norm="batch"`` normalises the encoder's hidden layer with each batch's own
    statistics, the whole batch at once (SCALEX transforms in train mode on single-batch
    minibatches, i.e. with per-batch statistics; here they are exact, not per minibatch);
    ``"running"`` uses the training running averages (eval mode)."""
    model.eval()
    enc = model.encoder
    out = np.empty((data.X.shape[0], enc.mu.out_features), dtype=np.float32)
    stats = encoder_batch_stats(model, data, params.chunk_size, device) if params.transform_norm == "batch" else None
    for b in np.unique(data.batches):
        rows = np.flatnonzero(data.batches == b)
        for sel in _chunks(len(rows), params.chunk_size):
            h = enc.hidden_pre_norm(torch.from_numpy(data.X[rows[sel]].toarray()).to(device))
            if stats is None:
                h = enc.bn(h)
            else:
                mean, var = stats[b]
                h = (h - mean) / torch.sqrt(var + enc.bn.eps) * enc.bn.weight + enc.bn.bias
            out[rows[sel]] = enc.head(h)[0].cpu().numpy()
    return out


@torch.no_grad()
def impute(model: ScalexVAE, latent: np.ndarray, domain: int, chunk_size: int, device: torch.device) -> np.ndarray:
    """Decoded expression (scaled HVG space, in [0, 1]) of every cell through one batch's decoder."""
    model.eval()
    out = np.empty((latent.shape[0], model.decoder.fc.out_features), dtype=np.float32)
    for sel in _chunks(latent.shape[0], chunk_size):
        z = torch.from_numpy(latent[sel]).to(device)
        out[sel] = model.decoder(z, torch.full((len(sel),), domain, dtype=torch.long, device=device)).cpu().numpy()
    return out


@torch.no_grad()
def fit_new_decoder_norms(model: ScalexVAE, data: Prepared, latent: np.ndarray, domains: list[str], new: list[str],
                          chunk_size: int, device: torch.device) -> None:
    """Projection: give each new batch its own decoder batch norm, its statistics the cumulative
    average over the batch's cells (nothing else in the model changes)."""
    norm = model.decoder.norm
    norm.add_domains(len(new))
    for b in new:
        bn = norm.bns[domains.index(b)]
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
        rows = np.flatnonzero(data.batches == b)
        for sel in _chunks(len(rows), chunk_size):
            if len(sel) > 1:
                bn(model.decoder.fc(torch.from_numpy(latent[rows[sel]]).to(device)))
        bn.momentum = 0.1
        bn.eval()
    model.config["n_domain"] = len(domains)


def writes_checkpoint(method: str, harmony_on: str, projection: str | None) -> bool:
    """Whether an integrate run has a VAE to save: scalex, a projection, or Harmony on the VAE's latent
    (Harmony on PCA has no model). The CLI and the local engine's expected outputs follow this one rule."""
    return bool(projection) or method == "scalex" or harmony_on == "latent"


def save_checkpoint(folder: Path, model: ScalexVAE, genes: list[str], maxabs: dict[str, np.ndarray], domains: list[str],
                    params: ScalexParams, info: dict) -> None:
    """``model.pt`` (weights, config, genes, batches, max-abs scales; tensors and plain types only, so
    ``load_checkpoint`` reads it with ``weights_only=True``) and a readable ``config.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "config": model.config,
                "genes": list(genes), "domains": list(domains), "params": asdict(params),
                "maxabs": {k: torch.from_numpy(v) for k, v in maxabs.items()}}, folder / "model.pt")
    summary = {"model": model.config, "params": asdict(params), "domains": list(domains), "n_genes": len(genes),
               "training": {k: v for k, v in info.items() if k != "loss_history"}}
    (folder / "config.json").write_text(json.dumps(summary, indent=2, default=float))


def load_checkpoint(folder: Path, device: torch.device) -> tuple[ScalexVAE, dict]:
    """The VAE saved by ``save_checkpoint`` and its state (genes, domains, ``ScalexParams``, max-abs
    scales as arrays); read with ``weights_only=True``, anything else is an InputError."""
    path = Path(folder) / "model.pt"
    if not path.exists():
        raise InputError(f"{path}: no SCALEX checkpoint here (expected the integrate folder of an earlier run, "
                         f"holding checkpoint/model.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = state["config"]
        model = ScalexVAE(cfg["n_input"], cfg["n_domain"], cfg["n_hidden"], cfg["n_latent"])
        model.load_state_dict(state["state_dict"])
        state["maxabs"] = {k: v.numpy() for k, v in state["maxabs"].items()}
        state["params"] = ScalexParams(**state["params"])
        if len(state["genes"]) != cfg["n_input"] or len(state["domains"]) != cfg["n_domain"]:
            raise ValueError("genes or batches do not match the model's size")
    except Exception as exc:  # noqa: BLE001 - anything unreadable here is a file that is not our checkpoint
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a checkpoint of fatescope integrate (or one holding code objects, which are "
                         f"never loaded): {type(exc).__name__}: {first[:200]}") from None
    return model.to(device), state
