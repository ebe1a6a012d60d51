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

# choose_backend WANTED ENGINE: sets CHOSEN (ENGINE or embedded) and prints which and why.
choose_backend() {
  local wanted=$1 engine=$2
  case "$wanted" in
    auto)
      if ! python_has "$engine"; then
        CHOSEN=embedded; echo "$LAUNCHER: backend embedded ($engine is not importable with $PYTHON)"
      elif ! gpu_visible; then
        CHOSEN=embedded; echo "$LAUNCHER: backend embedded (no GPU visible to nvidia-smi)"
      else
        CHOSEN=$engine; echo "$LAUNCHER: backend $engine ($engine imports and a GPU is visible)"
      fi ;;
    embedded)
      CHOSEN=embedded; echo "$LAUNCHER: backend embedded (BACKEND=embedded)" ;;
    "$engine")
      CHOSEN=$engine
      if [ "$DRY_RUN" != 1 ]; then
        python_has "$engine" || die "BACKEND=$engine but '$PYTHON -c \"import $engine\"' fails; install it or set BACKEND=auto"
        gpu_visible || die "BACKEND=$engine but no GPU is visible to nvidia-smi; set BACKEND=embedded for CPU"
      fi
      echo "$LAUNCHER: backend $engine (BACKEND=$engine)" ;;
    *) die "BACKEND must be auto, $engine or embedded, not '$wanted'" ;;
  esac
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
