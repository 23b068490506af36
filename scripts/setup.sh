#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build Release, run the main job on the embedded
# defaults — simulate the handbook's data set, train a model, print the evaluation table — and
# start the scoring server on it.
# Environment: VIGIL_PORT (default 8080); VIGIL_NO_SERVE=1 stops after the evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"

mkdir -p data models
if [ ! -f data/transactions.csv ]; then
  echo "== simulate (the handbook's configuration) =="
  ./build/vigil simulate --out data/transactions.csv
fi
if [ ! -f models/gbdt.model ]; then
  echo "== train (gbdt, all features) =="
  ./build/vigil train --data data/transactions.csv --algo gbdt --features all --out models/gbdt.model
fi
echo "== evaluate (the handbook's prequential protocol) =="
./build/vigil evaluate --data data/transactions.csv --features book,all

if [ "${VIGIL_NO_SERVE:-0}" = 1 ]; then exit 0; fi
echo "== serve (Ctrl-C stops it; try the curl below from another terminal) =="
port="${VIGIL_PORT:-8080}"
echo "curl -s -XPOST http://127.0.0.1:$port/v1/score -H 'Content-Type: application/json' \\"
echo "  -H \"Authorization: Bearer \$(cat data/admin.key)\" \\"
echo "  -d '{\"transaction_id\":\"demo-1\",\"customer_id\":\"42\",\"terminal_id\":\"7\",\"amount\":950.0,\"timestamp\":\"2018-09-01T03:12:00Z\"}'"
exec ./build/vigil serve --model models/gbdt.model --port "$port" --data-dir data
