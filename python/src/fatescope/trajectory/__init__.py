"""Trajectory math for the ``fate-probs`` stage: diffusion pseudotime, CellRank's pseudotime kernel and
absorption (fate) probabilities of the resulting Markov chain -- implemented here, without CellRank."""
from .absorption import absorption_probabilities
from .kernel import transition_matrix
from .pseudotime import diffusion_pseudotime
from .terminal import find_terminal_states, terminal_cells

__all__ = ["absorption_probabilities", "diffusion_pseudotime", "find_terminal_states", "terminal_cells",
           "transition_matrix"]
