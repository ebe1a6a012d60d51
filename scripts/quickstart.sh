#!/usr/bin/env bash
# The whole TRM loop at toy scale on a CPU, with the embedded servers. Run it through `make quickstart`
# (which sets up .venv first). Every model here is tiny and built on the spot; nothing is downloaded.
#
# Servers started (and stopped on exit):
#   TRM       `trm.sh` -> embedded `trm serve reward` on the tiny TRM trained in step 3   127.0.0.1:$TRM_PORT
#   verifier  `server/general-verifier.sh` -> embedded `trm serve chat` on the tiny chat model  127.0.0.1:$VERIFIER_PORT
#             (also used as the LLM judge of the ME² pipeline in step 7; its answers are random text)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-runs/quickstart}
TRM_PORT=${TRM_PORT:-39999}
VERIFIER_PORT=${VERIFIER_PORT:-23888}
PYTHON=${PYTHON:-python3}
export PYTHON OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()
trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. tiny models (a 2-layer Llama reward model and chat model, built here)"
trm tiny --output-dir "$WORK/models"

step "2. how every part of the toolkit reads data/sample.json"
trm inspect --input data/sample.json

step "3. train the tiny TRM on toy preference pairs (TRL RewardTrainer), then its pairwise accuracy"
trm data trm-preference describe data/toy_preferences_train.jsonl
trm train-rm --model_name_or_path "$WORK/models/reward" \
  --train_file data/toy_preferences_train.jsonl --validation_file data/toy_preferences_test.jsonl \
  --output_dir "$WORK/trm" --learning_rate 1e-3 --per_device_train_batch_size 8 --num_train_epochs 1 \
  --max_train_samples 128 --eval_strategy steps --eval_steps 8 --save_steps 8 \
  --load_best_model_at_end --metric_for_best_model accuracy --disable_tqdm true > "$WORK/train_rm.log" 2>&1 \
  || { tail -n 30 "$WORK/train_rm.log"; exit 1; }
trm eval rm --data data/toy_preferences_test.jsonl --trm-model "$WORK/trm" --table

step "4. serve the trained TRM and the verifier (the launchers pick the embedded servers on CPU)"
# A server already on one of these ports makes the launcher fail at once (naming the process); the extra served name
# RUN_ID proves that the servers answering below are the ones started here, not leftovers from an earlier session.
RUN_ID="quickstart-$$-$RANDOM"
MODEL_PATH="$WORK/trm" PORT=$TRM_PORT EXTRA_ARGS="--served-model-name $RUN_ID" bash trm.sh > "$WORK/trm-server.log" 2>&1 &
TRM_PID=$!
PIDS+=($TRM_PID)
MODEL_PATH="$WORK/models/chat" PORT=$VERIFIER_PORT EXTRA_ARGS="--served-model-name $RUN_ID" \
  bash server/general-verifier.sh > "$WORK/verifier-server.log" 2>&1 &
VERIFIER_PID=$!
PIDS+=($VERIFIER_PID)
trm serve wait "127.0.0.1:$TRM_PORT" --pid "$TRM_PID" --expect-model "$RUN_ID" --timeout 180 \
  || { tail -n 3 "$WORK/trm-server.log"; exit 1; }
trm serve wait "127.0.0.1:$VERIFIER_PORT" --pid "$VERIFIER_PID" --expect-model "$RUN_ID" --timeout 180 \
  || { tail -n 3 "$WORK/verifier-server.log"; exit 1; }
head -n 1 "$WORK/trm-server.log"

step "5. score data/sample.json over HTTP (the original release's wire format), and in-process"
HTTP_SCORE=$(trm score --input data/sample.json --trm-endpoint "127.0.0.1:$TRM_PORT")  # assignments keep set -e
LOCAL_SCORE=$(trm score --input data/sample.json --trm-model "$WORK/trm")
echo "TRM score over HTTP (trm score --trm-endpoint):  $HTTP_SCORE"
echo "TRM score in-process (trm score --trm-model):    $LOCAL_SCORE"
TRM_PORT=$TRM_PORT "$PYTHON" - <<'PY'
import json, os
import requests

with open("data/sample.json", encoding="utf-8") as f:
    sample = json.load(f)
reasoning = sample["response"].split("</think>", 1)[0].removeprefix("<think>")
payload = {"model": "RewardModel", "input": f"{sample['prompt']}\n{reasoning}"}
resp = requests.post(f"http://127.0.0.1:{os.environ['TRM_PORT']}/v1/embeddings", json=payload, timeout=60)
resp.raise_for_status()
print("TRM score via requests (original README):  ", resp.json()["data"][0]["embedding"][0])
PY

step "6. RL rewards r = v * (0.8 + 0.2 * sigmoid(t)) for a small batch, through both servers"
trm reward --data data/webinstruct_tiny.parquet --responses data/webinstruct_tiny_responses.jsonl \
  --trm-endpoint "127.0.0.1:$TRM_PORT" --verifier-endpoint "127.0.0.1:$VERIFIER_PORT"
# the tiny chat model has 4096 positions and the 12-row parquet makes 2 steps: lengths and steps sized to fit
MAX_PROMPT_LENGTH=1024 MAX_RESPONSE_LENGTH=2048 TOTAL_TRAINING_STEPS=2 \
  bash train.sh --dry-run data.train_files=data/webinstruct_tiny.parquet data.val_files=data/webinstruct_tiny.parquet \
  data.train_batch_size=8 actor_rollout_ref.model.path="$WORK/models/chat"

step "7. ME² pipeline plumbing: trace -> DAG with an LLM judge (the tiny chat model answers noise, so steps fall back to 'continue')"
tail -n 2 docs/examples/traces.jsonl > "$WORK/pref_in.jsonl"
trm dag build --input "$WORK/pref_in.jsonl" --output "$WORK/dags.jsonl" \
  --judge-url "http://127.0.0.1:$VERIFIER_PORT/v1" --judge-model TIGER-Lab/general-verifier --rounds 1 --dag-max-tokens 16 \
  --max-fallback-rate 1  # the tiny model's noise is rejected at every step; a real judge must stay under 0.1
trm dag render --input "$WORK/dags.jsonl" --output "$WORK/dag.svg"

step "8. best-of-N with the trained TRM on a synthetic candidate pool, with tables and a plot"
"$PYTHON" -m trm.evaluation.toy --benchmark aime24 --data-dir data/benchmarks --n 16 --repeat-items 16 --output "$WORK/pool.jsonl"
trm eval bon --generations "$WORK/pool.jsonl" --trm-endpoint "127.0.0.1:$TRM_PORT" --output-dir "$WORK/bon" \
  --n-values 1 2 4 8 16 --title "CPU toy: synthetic pool (wrong answers tend to have ME² defects), trained tiny TRM"

step "9. RL on a CPU: SFT warm-up of the tiny policy, then GRPO steps with TRL and the thinking reward (both servers)"
trm rl toy --output-dir "$WORK/rl_toy" --trm-endpoint "127.0.0.1:$TRM_PORT" --verifier-endpoint "127.0.0.1:$VERIFIER_PORT" \
  2> "$WORK/rl_toy.log" || { tail -n 30 "$WORK/rl_toy.log"; exit 1; }

step "done: outputs are under $WORK (trained TRM, server logs, dags.jsonl, dag.svg, bon/bon.png, rl_toy/reward_curve.png)"
