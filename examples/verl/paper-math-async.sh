#!/usr/bin/env bash
# The paper's math setting with verl's V1 trainer in colocate_async mode: rollouts of the next
# step are generated (and their groups judged by ROPD) while the current step trains, so the
# judge's latency overlaps across steps too, not only within a step. Off-policy by at most
# `max_off_policy_threshold` model versions. Same environment variables as paper-math.sh.
#   bash examples/verl/paper-math-async.sh [extra verl overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."

export RUN=${RUN:-runs/ropd-verl-async}
export NAME=${NAME:-paper-math-async}
export MODE=colocate_async
exec bash examples/verl/paper-math.sh \
  trainer.v1.colocate_async.num_warmup_batches=1 \
  trainer.v1.sampler.max_off_policy_threshold=1 \
  "$@"
