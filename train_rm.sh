#!/usr/bin/env bash
# Train a Thinking Reward Model with TRL's RewardTrainer (`trm train-rm`).
#
#   bash train_rm.sh                  train with the settings below (FSDP2 over all GPUs, or one CPU process)
#   bash train_rm.sh --dry-run        print the command that would run, then exit
#   bash train_rm.sh --max_steps 10   any further flag is passed to `trm train-rm` (RewardConfig names)
#
# Every variable below can also be set from the environment (MODEL_PATH=... bash train_rm.sh).
# GPUs present (nvidia-smi): accelerate launch with accelerate_configs/fsdp2.yaml, bf16, gradient checkpointing.
# No GPU: a single CPU process with the same flags minus the GPU-only ones.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- data and model ----------------------------------------------------------------------------------------------
MODEL_PATH=${MODEL_PATH:-meta-llama/Llama-3.1-8B-Instruct}
TRAIN_FILE=${TRAIN_FILE:-$HOME/data/TRM-Preference/TRM-preference-train.json}
VALIDATION_FILE=${VALIDATION_FILE:-$HOME/data/TRM-Preference/TRM-preference-test.json}
OUTPUT_DIR=${OUTPUT_DIR:-runs/trm-llama-3.1-8b}

# ---- hardware ----------------------------------------------------------------------------------------------------
NUM_GPUS=${NUM_GPUS:-auto}            # auto = count with nvidia-smi (0 without it)
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-$ROOT/accelerate_configs/fsdp2.yaml}
PYTHON=${PYTHON:-}                    # empty: the project's .venv when present and not active, else python3

# ---- optimisation (the release's settings; global batch = NUM_GPUS x 2 x 12 = 192 on 8 GPUs) --------------------
PER_DEVICE_BATCH=${PER_DEVICE_BATCH:-2}
GRAD_ACCUM=${GRAD_ACCUM:-12}
EPOCHS=${EPOCHS:-1}
LR=${LR:-5e-6}                        # the release's script; the paper reports 1e-6 with cosine decay
LR_SCHEDULER=${LR_SCHEDULER:-cosine}
WARMUP_RATIO=${WARMUP_RATIO:-0.03}
WEIGHT_DECAY=${WEIGHT_DECAY:-1e-3}
CENTER_REWARDS=${CENTER_REWARDS:-0.001}
MAX_LENGTH=${MAX_LENGTH:-8192}        # tokens of prompt + reasoning; longer pairs are dropped and counted ...
TRUNCATION=${TRUNCATION:-}            # ... unless set to left or right (cut the reasoning trace instead)
SEED=${SEED:-42}

# ---- evaluation and checkpoints ----------------------------------------------------------------------------------
EVAL_STEPS=${EVAL_STEPS:-8}
SAVE_STEPS=${SAVE_STEPS:-8}
SAVE_TOTAL_LIMIT=${SAVE_TOTAL_LIMIT:-2}  # the best checkpoint (by eval accuracy) is always kept as well
LOGGING_STEPS=${LOGGING_STEPS:-1}
REPORT_TO=${REPORT_TO:-none}          # wandb, tensorboard, ...
RESUME=${RESUME:-auto}                # continue from the newest checkpoint in OUTPUT_DIR if there is one

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY_RUN=1
  shift
fi
LAUNCHER=train_rm.sh
REPO=$ROOT
. "$ROOT/server/launch-lib.sh"
pick_python "$ROOT"
require_trm
if [[ -d "$MODEL_PATH" ]]; then
  [[ -f "$MODEL_PATH/config.json" ]] || die "MODEL_PATH '$MODEL_PATH' has no config.json; is it a Hugging Face model folder?"
  checked "model folder $MODEL_PATH"
else
  skipped "model (MODEL_PATH '$MODEL_PATH' is not a local folder: a hub id, fetched at launch)"
fi
for data in TRAIN_FILE VALIDATION_FILE; do
  if [[ -f "${!data}" ]]; then
    checked "$data exists"
  elif (( DRY_RUN )); then
    echo "train_rm.sh: warning: $data '${!data}' does not exist; a real launch would stop here" >&2
    skipped "$data (does not exist)"
  else
    die "$data '${!data}' does not exist; set $data=/path/to/pairs.json (trm data trm-preference validate checks one)"
  fi
done

if [[ "$NUM_GPUS" == "auto" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    NUM_GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  else
    NUM_GPUS=0
  fi
fi

ARGS=(
  --model_name_or_path "$MODEL_PATH"
  --train_file "$TRAIN_FILE"
  --validation_file "$VALIDATION_FILE"
  --output_dir "$OUTPUT_DIR"
  --per_device_train_batch_size "$PER_DEVICE_BATCH"
  --per_device_eval_batch_size "$PER_DEVICE_BATCH"
  --gradient_accumulation_steps "$GRAD_ACCUM"
  --num_train_epochs "$EPOCHS"
  --learning_rate "$LR"
  --lr_scheduler_type "$LR_SCHEDULER"
  --warmup_ratio "$WARMUP_RATIO"
  --weight_decay "$WEIGHT_DECAY"
  --center_rewards_coefficient "$CENTER_REWARDS"
  --max_length "$MAX_LENGTH"
  --eval_strategy steps
  --eval_steps "$EVAL_STEPS"
  --save_strategy steps
  --save_steps "$SAVE_STEPS"
  --save_total_limit "$SAVE_TOTAL_LIMIT"
  --load_best_model_at_end
  --metric_for_best_model accuracy
  --logging_steps "$LOGGING_STEPS"
  --report_to "$REPORT_TO"
  --seed "$SEED"
  --dataloader_drop_last
  --resume_from_checkpoint "$RESUME"
)
if [[ -n "$TRUNCATION" ]]; then
  ARGS+=(--truncation "$TRUNCATION")
fi

ACCELERATE=accelerate
if [[ "$PYTHON" == */* && -x "$(dirname "$PYTHON")/accelerate" ]]; then
  ACCELERATE=$(dirname "$PYTHON")/accelerate  # the same environment as $PYTHON, active or not
fi
if (( NUM_GPUS > 0 )); then
  CMD=("$ACCELERATE" launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NUM_GPUS"
       -m trm train-rm "${ARGS[@]}" --bf16 --gradient_checkpointing "$@")
else
  CMD=("$PYTHON" -m trm train-rm "${ARGS[@]}" "$@")
fi

if (( NUM_GPUS > 0 )); then
  echo "train_rm.sh: ${NUM_GPUS} GPU(s): accelerate launch, FSDP2, ${NUM_GPUS} processes" >&2
else
  echo "train_rm.sh: no GPU: one CPU process" >&2
fi
if (( DRY_RUN )); then
  skipped "GPU memory and the training itself (checked at launch)"
  dry_run_summary
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
cd "$ROOT"
exec "${CMD[@]}"
