#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build Release, and run the main job on the
# embedded defaults: simulate the handbook's data set, train a model, print the evaluation table.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"

mkdir -p data models
echo "== simulate (the handbook's configuration) =="
./build/vigil simulate --out data/transactions.csv
echo "== train (gbdt, all features) =="
./build/vigil train --data data/transactions.csv --algo gbdt --features all --out models/gbdt.model
echo "== evaluate (the handbook's prequential protocol) =="
./build/vigil evaluate --data data/transactions.csv --features book,all
