"""Evaluation with the paper's protocol: pass@1 over n samples per item, one command per model.

`tasks` (which benchmarks, where their data lives) → `items` (validated, prompt-ready rows) →
`generate` (transformers or an OpenAI-compatible endpoint) → `scoring` (math-verify, option
letters, IFEval checks, rubric grader) → `store` (resumable samples.jsonl) → `summary` /
`compare` (pass@1 tables and the share of the student-teacher gap closed). `runner` ties it up.
"""
