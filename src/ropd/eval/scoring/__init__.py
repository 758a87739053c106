"""Scorers, one per task family: each maps (item, completion) to a score in [0, 1]."""
