#!/usr/bin/env bash
# Serve TIGER-Lab/general-verifier over the OpenAI chat completions API (answer equivalence checks for RL).
# vLLM on GPUs when installed; otherwise the embedded server (`trm serve chat`), same wire format.
# The verifier reads plain text: chat_templates/verifier.jinja joins the message contents with no chat markup.
# Edit the variables below, or set them in the environment. `--dry-run` prints the choice and the command.
MODEL_PATH=${MODEL_PATH:-/path/to/general-verifier}
HOST=${HOST:-127.0.0.1}                        # 0.0.0.0 to accept other machines (then set API_KEY)
PORT=${PORT:-23888}
BACKEND=${BACKEND:-auto}                       # auto | vllm | embedded
TP_SIZE=${TP_SIZE:-1}                          # tensor parallel size (vLLM)
SERVED_MODEL_NAME=${SERVED_MODEL_NAME:-TIGER-Lab/general-verifier}
CHAT_TEMPLATE=${CHAT_TEMPLATE:-}                # default: chat_templates/verifier.jinja of this repository
API_KEY=${API_KEY:-${TRM_API_KEY:-}}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-}               # context limit (empty: the model's)
PYTHON=${PYTHON:-}                             # empty: the project's .venv when present and not active, else python3
EXTRA_ARGS=${EXTRA_ARGS:-}                     # more flags, e.g. "--gpu-memory-utilization 0.85"

set -euo pipefail
LAUNCHER=server/general-verifier.sh
DRY_RUN=${DRY_RUN:-0}
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
REPO=$(dirname "$(dirname "$(readlink -f "$0")")")
. "$REPO/server/launch-lib.sh"
CHAT_TEMPLATE=${CHAT_TEMPLATE:-$REPO/chat_templates/verifier.jinja}

pick_python "$REPO"  # empty PYTHON: the project's .venv when it is not active, else python3
require_model_dir "$MODEL_PATH"
require_free_port "$HOST" "$PORT"
warn_open_host
[ -f "$CHAT_TEMPLATE" ] || die "CHAT_TEMPLATE '$CHAT_TEMPLATE' does not exist"
check_context_limit MAX_MODEL_LEN "$MAX_MODEL_LEN"
choose_backend "$BACKEND" vllm vllm.entrypoints.openai.api_server
if [ "$CHOSEN" = vllm ]; then
  [ -z "$API_KEY" ] || export VLLM_API_KEY="$API_KEY"  # vLLM reads the key from here; not visible in `ps`
  run_command "$PYTHON" -m vllm.entrypoints.openai.api_server --model "$MODEL_PATH" \
    --served-model-name "$SERVED_MODEL_NAME" --chat-template "$CHAT_TEMPLATE" \
    --host "$HOST" --port "$PORT" --tensor-parallel-size "$TP_SIZE" \
    ${MAX_MODEL_LEN:+--max-model-len "$MAX_MODEL_LEN"} $EXTRA_ARGS
else
  require_trm
  [ -z "$API_KEY" ] || export TRM_API_KEY="$API_KEY"
  run_command "$PYTHON" -m trm serve chat --model "$MODEL_PATH" --chat-template "$CHAT_TEMPLATE" \
    --host "$HOST" --port "$PORT" --served-model-name "$SERVED_MODEL_NAME" \
    ${MAX_MODEL_LEN:+--max-length "$MAX_MODEL_LEN"} $EXTRA_ARGS
fi
