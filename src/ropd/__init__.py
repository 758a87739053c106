"""ropd: Rubric-based On-Policy Distillation.

The core (rubrics, the judge client, the group scorer, the stores) is pure Python and async;
training engines, local model servers and evaluation libraries are optional extras.
"""

__version__ = "0.1.0"
