# Shared by the launchers (trm.sh, server/general-verifier.sh, train.sh, train_rm.sh; sourced, not run): which Python,
# model-path, port and context checks, backend choice, and what a dry run checked and skipped.

die() { echo "$LAUNCHER: error: $*" >&2; exit 2; }

# What a dry run checked and skipped, reported by dry_run_summary (the three launchers say the same things).
CHECKED=() SKIPPED=()
checked() { CHECKED+=("$1"); }
skipped() { SKIPPED+=("$1"); }
dry_run_summary() {
  local joined
  joined=$(printf '%s; ' "${CHECKED[@]}" "nothing"); echo "$LAUNCHER: dry run checked: ${joined%; nothing; }" >&2
  [ "${#CHECKED[@]}" -gt 0 ] || echo "$LAUNCHER: dry run checked: nothing" >&2
  joined=$(printf '%s; ' "${SKIPPED[@]}" "nothing"); echo "$LAUNCHER: dry run skipped: ${joined%; nothing; }" >&2
}

# pick_python ROOT: $PYTHON when set; else ROOT/.venv/bin/python when it exists and no venv is active (the shell
# that forgot `source .venv/bin/activate`); else python3. Says which on stderr when it is the project's .venv.
pick_python() {
  [ -z "${PYTHON:-}" ] || return 0
  if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$1/.venv/bin/python" ]; then
    PYTHON=$1/.venv/bin/python
    echo "$LAUNCHER: using $PYTHON (the project's .venv, not active in this shell)" >&2
  else
    PYTHON=python3
  fi
}

# require_trm: the embedded servers and the training entry points need the trm package in $PYTHON.
require_trm() {
  if python_has trm; then
    checked "$PYTHON imports trm"
    return 0
  fi
  die "'$PYTHON' cannot import the trm package. Run 'make test' first (it creates .venv with everything), or activate the environment that has it ('source .venv/bin/activate'), or set PYTHON=/path/to/venv/bin/python"
}

# require_free_port HOST PORT: a server whose port is taken fails before it loads anything, naming the holder
# (trm/ports.py, standard library only). A dry run reports instead of failing.
require_free_port() {
  local why
  if why=$("$PYTHON" "$REPO/trm/ports.py" "$1" "$2" 2>&1); then
    checked "port $2 is free"
  elif [ "$DRY_RUN" = 1 ]; then
    echo "$LAUNCHER: warning: $why" >&2
    checked "port $2 is in use (a real launch would stop here)"
  else
    die "$why"
  fi
}

# require_model_dir PATH: fail at once, with what to change, when the model folder is missing or incomplete.
require_model_dir() {
  local path=$1
  if [ "$DRY_RUN" = 1 ] && [ -n "$path" ] && [ ! -e "$path" ]; then  # the README's placeholder path, for instance
    echo "$LAUNCHER: warning: MODEL_PATH '$path' does not exist; a real launch would stop here (set MODEL_PATH=/path/to/model)" >&2
    skipped "model folder (MODEL_PATH does not exist)"
    MODEL_MISSING=1
    return 0
  fi
  [ -n "$path" ] || die "MODEL_PATH is empty; edit MODEL_PATH at the top of $LAUNCHER or run MODEL_PATH=/path/to/model bash $LAUNCHER"
  [ -e "$path" ] || die "MODEL_PATH '$path' does not exist; edit MODEL_PATH at the top of $LAUNCHER or run MODEL_PATH=/path/to/model bash $LAUNCHER"
  [ -d "$path" ] || die "MODEL_PATH '$path' is not a folder; point it at the model folder (config.json, weights, tokenizer)"
  [ -f "$path/config.json" ] || die "MODEL_PATH '$path' has no config.json; is it a Hugging Face model folder?"
  checked "model folder $path"
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
      else
        skipped "import $entry and GPU (BACKEND=$engine; checked only at launch)"
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
  if [ "${MODEL_MISSING:-0}" = 1 ]; then skipped "$name against the model's positions (no model folder)"; return 0; fi
  positions=$(model_positions "$MODEL_PATH") || positions=
  if [ -z "$positions" ]; then
    echo "$LAUNCHER: $name=$value not checked: $MODEL_PATH/config.json names no max_position_embeddings"
    return 0
  fi
  [ "$value" -le "$positions" ] || die "$name=$value exceeds the $positions positions of $MODEL_PATH (config.json); vLLM and sglang refuse it at start-up. Set $name=$positions or less, or serve a copy with more positions (trm rl long-context)"
  echo "$LAUNCHER: $name=$value fits the model's $positions positions"
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
  if [ "$DRY_RUN" = 1 ]; then dry_run_summary; exit 0; fi
  exec "$@"
}
