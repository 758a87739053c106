#!/usr/bin/env bash
# The white-box setting on one verl job: an open teacher (here Qwen3-30B-A3B) judges, served by
# verl's own reward-model servers, while the student trains. The paper's math recipe
# (paper-math.sh) with the judge moved from an external endpoint onto the cluster: verl starts
# JUDGE_REPLICAS vLLM replicas of JUDGE_MODEL on their own GPUs (JUDGE_NODES x JUDGE_GPUS,
# tensor parallel JUDGE_TP) behind one router, and ropd sends its Rubricator and Verifier calls
# there (`base_url: verl` in examples/verl/ropd-judge-on-verl.yaml).
#   bash examples/verl/judge-on-verl.sh [extra verl overrides...]
#
# Environment, besides paper-math.sh's (defaults in brackets):
#   JUDGE_MODEL    the judge's weights (Hub id or path on every node) [Qwen/Qwen3-30B-A3B-Instruct-2507]
#   JUDGE_NODES    nodes of the judge's own resource pool [1]
#   JUDGE_GPUS     GPUs per judge node [8]
#   JUDGE_TP       tensor parallel size of one judge replica [4]
#   ROPD_CONFIG    [examples/verl/ropd-judge-on-verl.yaml]
#
# The K teacher answers still come from a teacher store built before training (for instance
# `vllm serve $JUDGE_MODEL` on the judge nodes, then `ropd teacher build`); they are put into
# the rows by prepare-data, as in paper-math.sh. docs/verl.md, "The judge on the cluster".
set -euo pipefail
cd "$(dirname "$0")/../.."

JUDGE_MODEL=${JUDGE_MODEL:-Qwen/Qwen3-30B-A3B-Instruct-2507}
JUDGE_NODES=${JUDGE_NODES:-1}
JUDGE_GPUS=${JUDGE_GPUS:-8}
JUDGE_TP=${JUDGE_TP:-4}
export ROPD_CONFIG=${ROPD_CONFIG:-examples/verl/ropd-judge-on-verl.yaml}
export RUN=${RUN:-runs/ropd-verl-judge}
export NAME=${NAME:-judge-on-verl}

exec bash examples/verl/paper-math.sh \
  reward.reward_model.enable=true \
  reward.reward_model.enable_resource_pool=true \
  reward.reward_model.nnodes="$JUDGE_NODES" \
  reward.reward_model.n_gpus_per_node="$JUDGE_GPUS" \
  reward.reward_model.model_path="$JUDGE_MODEL" \
  reward.reward_model.rollout.name=vllm \
  reward.reward_model.rollout.tensor_model_parallel_size="$JUDGE_TP" \
  reward.reward_model.rollout.gpu_memory_utilization=0.85 \
  reward.reward_model.rollout.prompt_length=32768 \
  reward.reward_model.rollout.response_length=4096 \
  reward.custom_reward_function.path=pkg://ropd.integrations.verl.reward_manager \
  "$@"
