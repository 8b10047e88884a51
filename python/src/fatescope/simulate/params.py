"""Every input of the simulation in one frozen dataclass; the CLI builds its options from it.

Each field carries its help text (and lower bound) as metadata, so the option list of
``fatescope simulate``, its defaults and its documentation have a single source.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import InputError

FATES = ("EC", "MES", "NEU")
REFERENCE_FATE = "EC"
MITO_GENES = ("MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3",
              "MT-ND3", "MT-ND4L", "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB")
PROGRAMS = ("progenitor", *FATES)  # expression programs: one fading, one rising per fate branch
MARKERS_PER_PROGRAM = 25
TRUTH_THRESHOLD = 0.2  # |theta| at or above this is a planted hit (the rank stage's min_abs_effect)


def _opt(default, help: str, minimum=None, maximum=None):
    return field(default=default, metadata={"help": help, "min": minimum, "max": maximum})


@dataclass(frozen=True)
class SimParams:
    seed: int = _opt(0, "Seed of numpy's default_rng; the same seed gives the same files.", 0)
    n_cells: int = _opt(4000, "Cells in total, split evenly over the day x replicate samples.", 1)
    n_genes: int = _opt(1200, "Genes measured (TFs, their targets, markers, mitochondrial, background).", 1)
    n_days: int = _opt(4, "Time points d0..d{n-1}.", 1)
    n_replicates: int = _opt(2, "Replicates per day; replicate r is library-prep batch 'batch<r>'.", 1)
    n_tfs: int = _opt(12, "Planted transcription factors, each driving its own regulon.", 1)
    targets_per_tf: int = _opt(30, "Target genes of each planted TF (regulons are disjoint).", 1)
    n_perturbed_genes: int = _opt(40, "Genes targeted by CRISPRi guides.", 1)
    guides_per_gene: int = _opt(4, "Guides per perturbed gene.", 1)
    n_ntc_guides: int = _opt(8, "Non-targeting control (NTC) guides.", 0)
    moi: float = _opt(3.0, "Mean guides per cell (Poisson rate before truncation at --kmax).", 0.0)
    kmax: int = _opt(20, "Maximum guides per cell (the Poisson is truncated: k <= kmax).", 1)
    ntc_frac: float = _opt(0.1, "Probability that a guide of a cell is an NTC guide.", 0.0, 1.0)
    frac_hit_genes: float = _opt(0.25, "Fraction of perturbed genes with a planted fate effect (the rest are exact nulls).",
                                 0.0, 1.0)
    s_tau: float = _opt(0.5, "tau: scale of the day-0 gene effects theta[., f, d0] of hit genes.", 0.0)
    s_time: float = _opt(0.3, "Typical per-interval random-walk step of theta (sigma_time, jittered per fate and interval).", 0.0)
    s_guide: float = _opt(0.1, "sigma_guide: scale of guide deviations delta around their gene's effect.", 0.0)
    dirichlet_conc: float = _opt(30.0, "Concentration of the Dirichlet noise on observed fate probabilities (lower = noisier).",
                                 0.01)
    fate_priming: float = _opt(0.0, "Lineage priming: each fate's branch program is also active at fate_priming x (1 - pseudotime) "
                               "x the cell's true pi of that fate, so early cells' expression carries their fate bias "
                               "(0 = the drawn fate alone).", 0.0)
    library_size: int = _opt(4000, "Median UMIs per cell before per-sample depth and per-cell size factors.", 1)
    batch_effect_sd: float = _opt(0.3, "SD of the gene-wise log-fold batch effects of each library-prep batch.", 0.0)
    n_motifs: int = _opt(100, "Motifs in the synthetic cisTarget ranking DB (2 planted per TF, the rest decoys).", 1)

    def __post_init__(self) -> None:
        problems = [f"{f.name} = {getattr(self, f.name)!r} is below its minimum {f.metadata['min']}"
                    for f in dataclasses.fields(self)
                    if f.metadata["min"] is not None and getattr(self, f.name) < f.metadata["min"]]
        problems += [f"{f.name} = {getattr(self, f.name)!r} is above its maximum {f.metadata['max']}"
                     for f in dataclasses.fields(self)
                     if f.metadata["max"] is not None and getattr(self, f.name) > f.metadata["max"]]
        if problems:
            raise InputError("simulate: invalid parameters", problems)
        problems += self._consistency_problems()
        if problems:
            raise InputError("simulate: inconsistent parameters", problems)

    def _consistency_problems(self) -> list[str]:
        problems = []
        if self.n_cells < self.n_samples:
            problems.append(f"n_cells = {self.n_cells} is fewer than the {self.n_samples} samples (days x replicates)")
        if self.n_genes < self.n_genes_needed:
            problems.append(f"n_genes = {self.n_genes} cannot hold the {self.n_genes_needed} genes with a role "
                            f"({self.n_tfs_total} TFs, {self.n_tfs} x {self.targets_per_tf} targets, "
                            f"{len(PROGRAMS)} x {MARKERS_PER_PROGRAM} markers, {len(MITO_GENES)} mitochondrial)")
        if self.n_perturbed_genes > self.n_genes - self.n_tfs_total - len(MITO_GENES):
            problems.append(f"n_perturbed_genes = {self.n_perturbed_genes} exceeds the non-TF, non-mitochondrial genes")
        if self.kmax > self.n_targeting_guides:
            problems.append(f"kmax = {self.kmax} exceeds the {self.n_targeting_guides} targeting guides "
                            "(a cell cannot carry the same guide twice)")
        if self.ntc_frac > 0 and self.n_ntc_guides == 0:
            problems.append("ntc_frac > 0 needs at least one NTC guide (n_ntc_guides)")
        if self.n_motifs < 2 * self.n_tfs:
            problems.append(f"n_motifs = {self.n_motifs} is fewer than the 2 planted motifs per TF ({2 * self.n_tfs})")
        return problems

    @property
    def n_samples(self) -> int:
        return self.n_days * self.n_replicates

    @property
    def n_tfs_without_targets(self) -> int:
        """TFs in the TF list and the data that regulate nothing (GRN false-positive bait)."""
        return max(2, self.n_tfs // 4)

    @property
    def n_tfs_total(self) -> int:
        return self.n_tfs + self.n_tfs_without_targets

    @property
    def n_targeting_guides(self) -> int:
        return self.n_perturbed_genes * self.guides_per_gene

    @property
    def n_genes_needed(self) -> int:
        return self.n_tfs_total + self.n_tfs * self.targets_per_tf + len(PROGRAMS) * MARKERS_PER_PROGRAM + len(MITO_GENES)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def option_fields() -> list[dataclasses.Field]:
    """The fields that become ``--<name>`` options, in declaration order."""
    return list(dataclasses.fields(SimParams))
