#!/usr/bin/env bash
# GRPO with thinking rewards (verl 0.6.0 main_ppo + the `verify` reward manager from remote_verifier.py).
#
#   bash train.sh [hydra overrides...]             launch training (GPUs, vLLM)
#   bash train.sh --dry-run [hydra overrides...]   compose and validate the same config on a CPU, then exit
#
# Before launching: serve the TRM (bash trm.sh) and the verifier (bash server/general-verifier.sh), and point
# remote_verifier.py (DEFAULT_RM_BACKENDS / DEFAULT_VERIFIER_BACKENDS, or TRM_RM_BACKENDS / TRM_VERIFIER_BACKENDS)
# at them. Every variable below can also be set from the environment. docs/rl.md: where each default comes from,
# the context fixes for Qwen2.5-Math, and the commands for each row of the paper's Table 2.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- what to train, on what --------------------------------------------------------------------------------------
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-Math-7B}
TRAIN_FILES=${TRAIN_FILES:-$HOME/data/WebInstruct-Verified-Processed/train.parquet}
VAL_FILES=${VAL_FILES:-$HOME/data/WebInstruct-Verified-Processed/test.parquet}
PROJECT_NAME=${PROJECT_NAME:-trm-grpo}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-qwen2.5-math-7b-trm-alpha0.2}
LOGGER=${LOGGER:-'["console","wandb"]'}

# ---- hardware ----------------------------------------------------------------------------------------------------
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-4}
NNODES=${NNODES:-1}
ROLLOUT_TP=${ROLLOUT_TP:-2}

# ---- GRPO (the paper's settings) ---------------------------------------------------------------------------------
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-512}
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-128}
LR=${LR:-5e-7}
CLIP_RATIO_LOW=${CLIP_RATIO_LOW:-0.3}
CLIP_RATIO_HIGH=${CLIP_RATIO_HIGH:-0.3}
CLIP_RATIO_C=${CLIP_RATIO_C:-10.0}
KL_LOSS_COEF=${KL_LOSS_COEF:-1e-4}
ENTROPY_COEFF=${ENTROPY_COEFF:-1e-3}
ROLLOUT_N=${ROLLOUT_N:-8}
TEMPERATURE=${TEMPERATURE:-1.0}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-2048}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-8192}
KL_COEF=${KL_COEF:-0}                                # algorithm.kl_ctrl.kl_coef (KL in the reward; off, as released)

# ---- run length: the paper's 300 steps; verl stops at whichever of steps and epochs comes first ------------------
TOTAL_TRAINING_STEPS=${TOTAL_TRAINING_STEPS-300}     # empty: run TOTAL_EPOCHS whole epochs (the release's train.sh)
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}                      # the release's value; the dry run says whether it caps the steps
SAVE_FREQ=${SAVE_FREQ:-5}                            # the release saves every 5 steps (disk: one checkpoint per save)
TEST_FREQ=${TEST_FREQ:-10}
VAL_BEFORE_TRAIN=${VAL_BEFORE_TRAIN:-True}
VAL_BATCH_SIZE=${VAL_BATCH_SIZE:-500}

# ---- memory / throughput on 4 GPUs (the release's values; docs/rl.md has the table) ------------------------------
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.7}
MAX_TOKENS_PER_GPU=${MAX_TOKENS_PER_GPU:-32768}                  # actor.ppo_max_token_len_per_gpu
LOG_PROB_MAX_TOKENS_PER_GPU=${LOG_PROB_MAX_TOKENS_PER_GPU:-32768} # rollout.log_prob_max_token_len_per_gpu
REF_LOG_PROB_MAX_TOKENS_PER_GPU=${REF_LOG_PROB_MAX_TOKENS_PER_GPU:-65536}
REF_PARAM_OFFLOAD=${REF_PARAM_OFFLOAD:-True}                     # the reference policy's weights wait on the CPU
# vLLM's token budget per scheduler step; with chunked prefill it must hold one whole prompt + response, so the
# default is the release's 65536 or prompt + response when that is longer.
MAX_NUM_BATCHED_TOKENS=${MAX_NUM_BATCHED_TOKENS:-$(( MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH > 65536 ? MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH : 65536 ))}

# ---- policy context: Qwen2.5-Math ships 4096 positions, fewer than prompt + response (docs/rl.md, "Context") -------
# LONG_CONTEXT=1 raises the positions (and RoPE base) in both places that read them: verl's model config
# (actor_rollout_ref.model.override_config) and vLLM's (engine_kwargs.vllm.hf_overrides; vLLM reads config.json).
# The other way: `trm rl long-context SRC DST` writes a copy with these values in its config.json; MODEL_PATH=DST.
LONG_CONTEXT=${LONG_CONTEXT:-0}
LONG_CONTEXT_POSITIONS=${LONG_CONTEXT_POSITIONS:-16384}
LONG_CONTEXT_ROPE_THETA=${LONG_CONTEXT_ROPE_THETA:-40000}

# ---- reward: r = v * (1 - ALPHA + ALPHA * sigmoid(t)) ------------------------------------------------------------
REWARD_FILE=${REWARD_FILE:-$ROOT/remote_verifier.py}
ALPHA=${ALPHA:-0.2}
REWARD_SCORER=${REWARD_SCORER:-trm}  # trm | reasonflux (Table 2 baseline, vLLM pooling server at the RM backends); ALPHA=0: verifier only
REWARD_PARALLELISM=${REWARD_PARALLELISM:-1024}

ARGS=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    algorithm.kl_ctrl.kl_coef="$KL_COEF"
    data.train_files="$TRAIN_FILES"
    data.val_files="$VAL_FILES"
    data.train_batch_size="$TRAIN_BATCH_SIZE"
    data.val_batch_size="$VAL_BATCH_SIZE"
    data.max_prompt_length="$MAX_PROMPT_LENGTH"
    data.max_response_length="$MAX_RESPONSE_LENGTH"
    data.filter_overlong_prompts=True
    data.truncation=error
    data.return_raw_chat=True
    actor_rollout_ref.model.path="$MODEL_PATH"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.actor.optim.lr="$LR"
    actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE"
    actor_rollout_ref.actor.use_dynamic_bsz=True
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU"
    actor_rollout_ref.actor.clip_ratio_low="$CLIP_RATIO_LOW"
    actor_rollout_ref.actor.clip_ratio_high="$CLIP_RATIO_HIGH"
    actor_rollout_ref.actor.clip_ratio_c="$CLIP_RATIO_C"
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef="$KL_LOSS_COEF"
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.entropy_coeff="$ENTROPY_COEFF"
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION"
    actor_rollout_ref.rollout.max_num_batched_tokens="$MAX_NUM_BATCHED_TOKENS"
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$LOG_PROB_MAX_TOKENS_PER_GPU"
    actor_rollout_ref.ref.log_prob_max_token_len_per_gpu="$REF_LOG_PROB_MAX_TOKENS_PER_GPU"
    actor_rollout_ref.ref.fsdp_config.param_offload="$REF_PARAM_OFFLOAD"
    actor_rollout_ref.rollout.n="$ROLLOUT_N"
    actor_rollout_ref.rollout.temperature="$TEMPERATURE"
    reward_model.reward_manager=verify
    reward_model.launch_reward_fn_async=True
    +reward_model.reward_kwargs.parallelism="$REWARD_PARALLELISM"
    +reward_model.reward_kwargs.alpha="$ALPHA"
    +reward_model.reward_kwargs.reward_scorer="$REWARD_SCORER"
    custom_reward_function.path="$REWARD_FILE"
    custom_reward_function.name=compute_score
    trainer.critic_warmup=0
    trainer.logger="$LOGGER"
    trainer.project_name="$PROJECT_NAME"
    trainer.experiment_name="$EXPERIMENT_NAME"
    trainer.n_gpus_per_node="$N_GPUS_PER_NODE"
    trainer.nnodes="$NNODES"
    trainer.save_freq="$SAVE_FREQ"
    trainer.test_freq="$TEST_FREQ"
    trainer.total_epochs="$TOTAL_EPOCHS"
    trainer.total_training_steps="${TOTAL_TRAINING_STEPS:-null}"
    trainer.val_before_train="$VAL_BEFORE_TRAIN"
)
if [[ "$LONG_CONTEXT" == 1 ]]; then
    for key in max_position_embeddings="$LONG_CONTEXT_POSITIONS" rope_theta="$LONG_CONTEXT_ROPE_THETA"; do
        ARGS+=("+actor_rollout_ref.model.override_config.$key"
               "+actor_rollout_ref.rollout.engine_kwargs.vllm.hf_overrides.$key")
    done
elif [[ "$LONG_CONTEXT" != 0 ]]; then
    echo "train.sh: LONG_CONTEXT must be 0 or 1, not '$LONG_CONTEXT'" >&2; exit 2
fi

LAUNCHER=train.sh
DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
. "$ROOT/server/launch-lib.sh"
pick_python "$ROOT"  # PYTHON unset: the project's .venv when it is not active, else python3
require_trm
if [[ "$DRY_RUN" == 1 ]]; then
    shift
    checked "verl config, data files, model context and reward manager (trm rl check, below)"
    skipped "GPUs, vLLM and the reward servers (checked at launch)"
    dry_run_summary
    exec "$PYTHON" -m trm rl check "${ARGS[@]}" "$@"
fi
exec "$PYTHON" -m trm.rl.train "${ARGS[@]}" "$@"  # verl's main_ppo + per-step thinking-reward metrics
