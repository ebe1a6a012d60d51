#!/usr/bin/env bash
# The whole TRM pipeline at toy scale on CPU, with the embedded servers. Run through `make quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-runs/quickstart}
mkdir -p "$WORK"

echo "== 1. tiny models (built here, no downloads)"
trm tiny --out "$WORK/models"

echo "== 2. how the toolkit reads data/sample.json"
trm inspect --input data/sample.json
