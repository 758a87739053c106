#!/usr/bin/env bash
# The paper's math setting with verl's V1 asynchronous trainer: rollouts of the next step are
# generated (and their groups judged by ROPD) while the current step trains, so the judge's
# latency overlaps across steps too, not only within a step. Off-policy by at most
# `max_off_policy_threshold` model versions.
#   bash examples/verl/paper-math-async.sh [extra verl overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."
# V1 needs verl's TransferQueue: pip install "verl[verl-core]"
USE_V1=true exec bash examples/verl/paper-math.sh \
  trainer.v1.trainer_mode=colocate_async \
  trainer.v1.colocate_async.num_warmup_batches=1 \
  trainer.v1.sampler.max_off_policy_threshold=1 \
  "$@"
