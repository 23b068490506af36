#!/usr/bin/env bash
# Quick start, step 2: build and run every test, then the unit tests once more under
# AddressSanitizer and UndefinedBehaviorSanitizer; then the checks: the layering of the
# components, clang's thread-safety analysis, and clang-tidy.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
jobs="$(nproc)"

echo "== layering (cmake/components.txt) =="
scripts/check-layering.sh

echo "== build (Release) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVIGIL_BUILD_TESTS=ON
cmake --build build -j"$jobs"
echo "== tests (unit + end-to-end) =="
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_SANITIZE=ON \
  -DVIGIL_BUILD_BENCH=OFF
cmake --build build-asan -j"$jobs" --target vigil_unit_tests
# XGBoost and its OpenMP runtime are not instrumented; their allocations are not ours to judge.
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs"

# clang++-14 with -Wthread-safety as errors, the component libraries only (the analysis needs
# no test or binary); its compile commands also serve clang-tidy below.
echo "== thread-safety analysis (clang-14, component libraries) =="
CC=clang-14 CXX=clang++-14 cmake -S . -B build-tsa -DCMAKE_BUILD_TYPE=Debug \
  -DVIGIL_THREAD_SAFETY=ON -DVIGIL_BUILD_BENCH=OFF
cmake --build build-tsa -j"$jobs" --target vigil_components

echo "== clang-tidy (.clang-tidy) =="
scripts/tidy.sh -j "$jobs" -p build-tsa
