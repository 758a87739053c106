"""Group scoring: rubric induction, blind verification, baselines and failure policies."""
