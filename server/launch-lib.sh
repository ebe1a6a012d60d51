# Shared by trm.sh and server/general-verifier.sh (sourced, not run): model-path checks and backend choice.

die() { echo "$LAUNCHER: error: $*" >&2; exit 2; }

# require_model_dir PATH: fail at once, with what to change, when the model folder is missing or incomplete.
require_model_dir() {
  local path=$1
  [ -n "$path" ] || die "MODEL_PATH is empty; edit MODEL_PATH at the top of $LAUNCHER or run MODEL_PATH=/path/to/model bash $LAUNCHER"
  [ -e "$path" ] || die "MODEL_PATH '$path' does not exist; edit MODEL_PATH at the top of $LAUNCHER or run MODEL_PATH=/path/to/model bash $LAUNCHER"
  [ -d "$path" ] || die "MODEL_PATH '$path' is not a folder; point it at the model folder (config.json, weights, tokenizer)"
  [ -f "$path/config.json" ] || die "MODEL_PATH '$path' has no config.json; is it a Hugging Face model folder?"
}

gpu_visible() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; }
python_has() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }
# import_error MODULE: the last line of the error importing MODULE with $PYTHON (empty when it imports).
import_error() { { "$PYTHON" -c "import $1" 2>&1 >/dev/null || true; } | tail -n 1; }

# choose_backend WANTED ENGINE ENTRY: sets CHOSEN (ENGINE or embedded) and prints which and why. ENTRY is the
# server's entry module: a package that imports but whose server does not (plain `sglang` without sgl_kernel)
# must not be picked.
choose_backend() {
  local wanted=$1 engine=$2 entry=${3:-$2} error
  case "$wanted" in
    auto)
      if ! python_has "$entry"; then
        error=$(import_error "$entry")
        CHOSEN=embedded; echo "$LAUNCHER: backend embedded ($entry is not importable with $PYTHON: ${error:-import failed})"
      elif ! gpu_visible; then
        CHOSEN=embedded; echo "$LAUNCHER: backend embedded (no GPU visible to nvidia-smi)"
      else
        CHOSEN=$engine; echo "$LAUNCHER: backend $engine ($entry imports and a GPU is visible)"
      fi ;;
    embedded)
      CHOSEN=embedded; echo "$LAUNCHER: backend embedded (BACKEND=embedded)" ;;
    "$engine")
      CHOSEN=$engine
      if [ "$DRY_RUN" != 1 ]; then
        python_has "$entry" || die "BACKEND=$engine but '$PYTHON -c \"import $entry\"' fails ($(import_error "$entry")); install it (docs/rl.md, GPU environments) or set BACKEND=auto"
        gpu_visible || die "BACKEND=$engine but no GPU is visible to nvidia-smi; set BACKEND=embedded for CPU"
      fi
      echo "$LAUNCHER: backend $engine (BACKEND=$engine)" ;;
    *) die "BACKEND must be auto, $engine or embedded, not '$wanted'" ;;
  esac
}

# model_positions DIR: the context length vLLM and sglang derive from DIR/config.json (max_position_embeddings,
# times the RoPE scaling factor for the types that stretch it; same rule as trm.rl.context.vllm_positions, kept
# stdlib-only here because the server's Python may not have trm). Prints nothing when the config does not say.
model_positions() {
  "$PYTHON" - "$1/config.json" 2>/dev/null <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
if "max_position_embeddings" not in config:
    config = config.get("text_config") or config.get("llm_config") or config
positions = config.get("max_position_embeddings")
scaling = config.get("rope_scaling") or {}
if positions and scaling.get("rope_type", scaling.get("type")) not in (None, "default", "su", "longrope", "llama3", "mrope"):
    if scaling.get("rope_type", scaling.get("type")) == "yarn" and "original_max_position_embeddings" in scaling:
        positions = scaling["original_max_position_embeddings"]
    positions = int(positions * float(scaling.get("factor", 1.0)))
print(positions or "")
PY
}

# check_context_limit NAME VALUE: refuse a context limit above the model's positions, as vLLM and sglang do at
# start-up (after loading for minutes); say what was checked.
check_context_limit() {
  local name=$1 value=$2 positions
  [ -n "$value" ] || return 0
  [[ "$value" =~ ^[0-9]+$ ]] || die "$name must be a whole number of tokens, not '$value'"
  positions=$(model_positions "$MODEL_PATH") || positions=
  if [ -z "$positions" ]; then
    echo "$LAUNCHER: $name=$value not checked: $MODEL_PATH/config.json names no max_position_embeddings"
    return 0
  fi
  [ "$value" -le "$positions" ] || die "$name=$value exceeds the $positions positions of $MODEL_PATH (config.json); vLLM and sglang refuse it at start-up. Set $name=$positions or less, or serve a copy with more positions (trm rl long-context)"
  echo "$LAUNCHER: $name=$value fits the model's $positions positions"
}

# require_trm: the embedded servers need the trm package in $PYTHON.
require_trm() {
  python_has trm || die "the embedded server needs the trm package, which '$PYTHON' cannot import; set PYTHON=/path/to/venv/bin/python or run 'pip install -e .'"
}

# warn_open_host: say so when the server will accept other machines without a key.
warn_open_host() {
  case "$HOST" in
    127.*|localhost|::1) ;;
    *) [ -n "$API_KEY" ] || echo "$LAUNCHER: warning: HOST=$HOST accepts other machines and API_KEY is empty; anyone who can reach port $PORT can use the model" >&2 ;;
  esac
}

# run_command ARGS...: print the command, then exec it (DRY_RUN=1 or --dry-run: print only).
run_command() {
  local shown="$*"
  [ -z "${API_KEY:-}" ] || shown=${shown//"$API_KEY"/"<API_KEY>"}  # keys stay out of logs
  echo "$LAUNCHER: $shown"
  [ "$DRY_RUN" = 1 ] && exit 0
  exec "$@"
}
