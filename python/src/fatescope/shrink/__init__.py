"""Shrinkage and hit calling: a Python mash engine faithful to mashr, the mashr backend, aggregation, ranking."""
