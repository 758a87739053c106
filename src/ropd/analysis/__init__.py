"""`ropd analyze`: how well each reward method separates correct from incorrect answers.

A fixed pool of prompts with answers of known correctness (`pool.py`) is scored by every
method with the same judge (`methods.py`); the figures (`stats.py`: ROC AUC, within-prompt AUC,
pair accuracy, criteria pass rates by category) and images (`plots.py`) go to one folder
(`runner.py`). Nothing here is imported by `import ropd`.
"""
