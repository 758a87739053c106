#!/usr/bin/env bash
# The paper's math setting on verl: Qwen3-4B student, GRPO, n = 8, 32 prompts per step,
# lr 1e-6, no KL, clip 0.2 / 0.28, token-mean loss, 1 epoch. ROPD is the reward manager.
#   pip install "ropd[verl]"           # on every node (see docs/verl.md)
#   bash examples/verl/paper-math.sh [extra verl overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${DATA:-dapo-math.jsonl}         # prompts (JSONL/JSON/Parquet/CSV or a Hub dataset id)
RUN=${RUN:-runs/ropd-verl}
NODES=${NODES:-1}
GPUS=${GPUS:-8}
USE_V1=${USE_V1:-false}               # the classic synchronous trainer (paper-math-async.sh: V1)

# verl's RLHFDataset rows; --teacher-store puts the K teacher answers into the rows, so no
# node needs the store file at training time
[ -f "$RUN/train.parquet" ] || ropd verl prepare-data "$DATA" -o "$RUN/train.parquet" \
  --prompt-field prompt --teacher-store teacher-dapo-math.sqlite -k 4

python -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  algorithm.use_kl_in_reward=false \
  data.train_files="$RUN/train.parquet" \
  data.val_files="$RUN/train.parquet" \
  data.train_batch_size=32 \
  data.max_prompt_length=2048 \
  data.max_response_length=8192 \
  actor_rollout_ref.model.path=Qwen/Qwen3-4B \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.ppo_mini_batch_size=32 \
  actor_rollout_ref.actor.use_kl_loss=false \
  actor_rollout_ref.actor.kl_loss_coef=0.0 \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.clip_ratio_low=0.2 \
  actor_rollout_ref.actor.clip_ratio_high=0.28 \
  actor_rollout_ref.actor.loss_agg_mode=token-mean \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.top_p=1.0 \
  reward.num_workers=8 \
  reward.reward_manager.source=importlib \
  reward.reward_manager.name=RopdRewardManager \
  reward.reward_manager.module.path=pkg://ropd.integrations.verl.reward_manager \
  +reward.reward_kwargs.ropd_config=examples/verl/ropd.yaml \
  trainer.use_v1="$USE_V1" \
  trainer.total_epochs=1 \
  trainer.test_freq=-1 \
  trainer.val_before_train=false \
  trainer.save_freq=25 \
  trainer.nnodes="$NODES" \
  trainer.n_gpus_per_node="$GPUS" \
  trainer.default_local_dir="$RUN" \
  trainer.project_name=ropd \
  trainer.experiment_name=paper-math \
  trainer.logger='[console,tensorboard]' \
  "$@"
