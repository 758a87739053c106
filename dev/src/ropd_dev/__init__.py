"""ropd's development tools, kept out of the ropd wheel (install: `pip install --no-deps -e dev/`).

- `ropd_dev.bench`: the benchmarks `ropd bench ...` runs (judge, teacher, train, faults, verl).
- `ropd_dev.faults`: `FaultJudgeServer`, the stub judge with a seeded mix of faults, for
  robustness tests and `ropd bench faults`.
- `ropd_dev.bad_inputs`: the table of bad inputs `ropd score` must refuse, shared by the CLI tests
  and `ropd bench faults`.
"""
