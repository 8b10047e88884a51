"""The generative model with planted truth for every stage (see docs/simulate.md).

Pure functions: parameters in, arrays/AnnData/tables out. ``fatescope.cli.simulate`` writes them.
"""
