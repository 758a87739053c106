#!/usr/bin/env bash
# The paper's math setting on verl: Qwen3-4B student, GRPO, n = 8, 32 prompts per step,
# lr 1e-6, no KL, clip 0.2 / 0.28, token-mean loss, 1 epoch. ROPD is the reward manager.
# verl's V1 trainer (synchronous mode); paper-math-async.sh is its colocate_async variant.
#   pip install "ropd[verl]" "verl[verl-core]"   # on every node; verl-core brings TransferQueue (V1)
#   bash examples/verl/paper-math.sh [extra verl overrides...]
#
# Environment (defaults in brackets):
#   DATA           prompts: JSONL/JSON/Parquet/CSV or a Hub dataset id [dapo-math.jsonl]
#   ROPD_CONFIG    the ropd: section the reward manager reads [examples/verl/ropd.yaml]
#   TEACHER_STORE  teacher store whose K answers go into the rows [teacher.store of ROPD_CONFIG]
#   VAL_SIZE       prompts held out of training as the validation split [128]
#   RUN            run folder: train/val Parquet, checkpoints, traces [runs/ropd-verl]
#   NAME           trainer.experiment_name [paper-math]
#   MODE           trainer.v1.trainer_mode: sync, colocate_async or separate_async [sync]
#   NODES, GPUS    trainer.nnodes, trainer.n_gpus_per_node [1, 8]
#   LAUNCH         the command given the overrides [python -m verl.trainer.main_ppo], e.g.
#                  "ray job submit --address http://head:8265 -- python -m verl.trainer.main_ppo"
#
# tests/verl/test_recipes.py runs this script with LAUNCH set to a recorder and checks what it
# would pass against verl's own Hydra config and validate_config: every verl key belongs in
# OVERRIDES below.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${DATA:-dapo-math.jsonl}
ROPD_CONFIG=${ROPD_CONFIG:-examples/verl/ropd.yaml}
TEACHER_STORE=${TEACHER_STORE:-}
VAL_SIZE=${VAL_SIZE:-128}
RUN=${RUN:-runs/ropd-verl}
NAME=${NAME:-paper-math}
MODE=${MODE:-sync}
NODES=${NODES:-1}
GPUS=${GPUS:-8}
LAUNCH=${LAUNCH:-python -m verl.trainer.main_ppo}

# verl's RLHFDataset rows, VAL_SIZE prompts held out as the validation file (`split` val). The
# teacher store and K come from ROPD_CONFIG (the reward's own); the K teacher answers are put
# into the rows, so no node needs the store file at training time.
if [ ! -f "$RUN/train.parquet" ] || [ ! -f "$RUN/val.parquet" ]; then
  ropd verl prepare-data "$DATA" -c "$ROPD_CONFIG" --prompt-field prompt \
    -o "$RUN/train.parquet" --val-output "$RUN/val.parquet" --val-size "$VAL_SIZE" \
    ${TEACHER_STORE:+--teacher-store "$TEACHER_STORE"}
fi

OVERRIDES=(
  # V1 trainer (verl's default since 0.9; said here so an older default cannot pick V0)
  trainer.use_v1=true
  trainer.v1.trainer_mode="$MODE"
  # GRPO as in the paper
  algorithm.adv_estimator=grpo
  algorithm.use_kl_in_reward=false
  critic.enable=false
  data.train_files="$RUN/train.parquet"
  data.val_files="$RUN/val.parquet"
  data.train_batch_size=32
  data.max_prompt_length=2048
  data.max_response_length=8192
  actor_rollout_ref.model.path=Qwen/Qwen3-4B
  actor_rollout_ref.model.use_remove_padding=true
  actor_rollout_ref.model.enable_gradient_checkpointing=true
  actor_rollout_ref.actor.optim.lr=1e-6
  actor_rollout_ref.actor.ppo_mini_batch_size=32
  actor_rollout_ref.actor.use_kl_loss=false
  actor_rollout_ref.actor.kl_loss_coef=0.0
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.28
  actor_rollout_ref.actor.loss_agg_mode=token-mean
  # micro-batches verl's validate_config requires (sized for 10k-token sequences on 80 GB
  # GPUs); actor.use_dynamic_bsz=true with ppo_max_token_len_per_gpu is the alternative
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.n=8
  actor_rollout_ref.rollout.temperature=1.0
  actor_rollout_ref.rollout.top_p=1.0
  # ROPD scores every rollout (validation rows too: one greedy answer against the K teachers)
  reward.num_workers=8
  reward.reward_manager.source=importlib
  reward.reward_manager.name=RopdRewardManager
  reward.reward_manager.module.path=pkg://ropd.integrations.verl.reward_manager
  +reward.reward_kwargs.ropd_config="$ROPD_CONFIG"
  trainer.total_epochs=1
  trainer.val_before_train=true
  trainer.test_freq=25
  trainer.save_freq=25
  trainer.nnodes="$NODES"
  trainer.n_gpus_per_node="$GPUS"
  trainer.default_local_dir="$RUN"
  trainer.project_name=ropd
  trainer.experiment_name="$NAME"
  trainer.logger='[console,tensorboard]'
)

# shellcheck disable=SC2086  # LAUNCH is a command line: split into words on purpose
exec $LAUNCH "${OVERRIDES[@]}" "$@"
