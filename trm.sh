#!/usr/bin/env bash
# Serve the Thinking Reward Model over the OpenAI embeddings API: POST /v1/embeddings, score = data[0].embedding[0].
# sglang (--is-embedding) on GPUs when installed; otherwise the embedded server (`trm serve reward`), same wire format.
# Edit the variables below, or set them in the environment: MODEL_PATH=/models/TRM-8B bash trm.sh
# `bash trm.sh --dry-run` prints the choice and the command without starting anything.
MODEL_PATH=${MODEL_PATH:-/path/to/TRM-8B}      # the TRM folder (config.json, weights, tokenizer)
HOST=${HOST:-127.0.0.1}                        # 0.0.0.0 to accept other machines (then set API_KEY)
PORT=${PORT:-39999}
BACKEND=${BACKEND:-auto}                       # auto | sglang | embedded
TP_SIZE=${TP_SIZE:-1}                          # tensor parallel size (sglang)
SERVED_MODEL_NAME=${SERVED_MODEL_NAME:-RewardModel}
API_KEY=${API_KEY:-${TRM_API_KEY:-}}           # optional Bearer key clients must send
MAX_LENGTH=${MAX_LENGTH:-}                     # token limit per input (empty: the model's context length)
PYTHON=${PYTHON:-}                             # the Python that has trm (empty: the project's .venv), or on GPUs
                                               # the sglang environment (requirements-gpu-trm-server.txt): PYTHON=/path/to/sglang-env/bin/python
EXTRA_ARGS=${EXTRA_ARGS:-}                     # more flags for the chosen server, e.g. "--mem-fraction-static 0.8"

set -euo pipefail
LAUNCHER=trm.sh
DRY_RUN=${DRY_RUN:-0}
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
REPO=$(dirname "$(readlink -f "$0")")
. "$REPO/server/launch-lib.sh"

pick_python "$REPO"  # empty PYTHON: the project's .venv when it is not active, else python3
require_model_dir "$MODEL_PATH"
require_free_port "$HOST" "$PORT"
warn_open_host
check_context_limit MAX_LENGTH "$MAX_LENGTH"
choose_backend "$BACKEND" sglang sglang.launch_server
if [ "$CHOSEN" = sglang ]; then
  # sglang takes the key only as --api-key; the wrapper adds it inside the process, so `ps` cannot show it.
  [ -z "$API_KEY" ] || { export TRM_API_KEY="$API_KEY"; echo "$LAUNCHER: API key passed to sglang through the environment (TRM_API_KEY), not the command line"; }
  run_command "$PYTHON" "$REPO/server/sglang_server.py" --model-path "$MODEL_PATH" --is-embedding \
    --host "$HOST" --port "$PORT" --tp-size "$TP_SIZE" --served-model-name "$SERVED_MODEL_NAME" \
    ${MAX_LENGTH:+--context-length "$MAX_LENGTH"} $EXTRA_ARGS
else
  require_trm
  [ -z "$API_KEY" ] || export TRM_API_KEY="$API_KEY"  # by environment, not visible in `ps`
  run_command "$PYTHON" -m trm serve reward --model "$MODEL_PATH" --host "$HOST" --port "$PORT" \
    --served-model-name "$SERVED_MODEL_NAME" ${MAX_LENGTH:+--max-length "$MAX_LENGTH"} $EXTRA_ARGS
fi
