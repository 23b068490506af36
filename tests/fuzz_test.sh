#!/usr/bin/env bash
# A short libFuzzer run over the request parser and validator (src/core/transaction_json_fuzz.cc):
# builds the target with clang++-14 (ASan + UBSan, UB fatal), seeds a corpus of valid and invalid
# bodies, and fuzzes for FUZZ_SECONDS (default 30). Any crash, sanitizer report or broken promise
# of the target fails the test; the crashing input is kept and printed.
# Usage: fuzz_test.sh [path/to/vigil]   (the binary is not used; VIGIL_SOURCE_DIR = repo root)
# Needs Debian packages clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes).
set -uo pipefail
SRC="${VIGIL_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
SECONDS_TO_FUZZ="${FUZZ_SECONDS:-30}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failures=0
passes=0

pass() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
  exit $?
}

CXX=clang++-14
if ! command -v "$CXX" >/dev/null 2>&1; then
  fail "$CXX not found: install the Debian packages clang-14 and libclang-rt-14-dev to fuzz"
  finish
fi

# --- build ------------------------------------------------------------------------------
FUZZER="$WORK/transaction_json_fuzz"
if "$CXX" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I "$SRC/include" -I "$SRC/src" \
    "$SRC/src/core/transaction_json_fuzz.cc" "$SRC/src/core/transaction_json.cc" \
    "$SRC/src/core/time.cc" "$SRC/src/core/status.cc" -lsimdjson -o "$FUZZER" \
    >"$WORK/build.log" 2>&1; then
  pass
else
  cat "$WORK/build.log" >&2
  if grep -q "libclang_rt.fuzzer\|fuzzer.*No such file" "$WORK/build.log"; then
    fail "build: libFuzzer runtime missing: install libclang-rt-14-dev"
  else
    fail "build of the fuzz target"
  fi
  finish
fi

# --- seed corpus ------------------------------------------------------------------------
CORPUS="$WORK/corpus"
mkdir -p "$CORPUS"
seed() { printf '%s' "$2" >"$CORPUS/$1"; }
TX='{"transaction_id":"tx-1","customer_id":42,"terminal_id":"T-9","amount":12.5,"timestamp":"2024-05-01T12:00:00Z"}'
seed valid "$TX"
seed full '{"transaction_id":7,"customer_id":"c-7","vendor_id":"v\u00e9","amount":0.5e2,"timestamp":"2024-05-01T12:00:00.5+02:00","currency":"EUR","status":"accepted","metadata":{"a":[1,-2.5e-3,null,true,false,{"b":"\ud83d\ude00"}]},"extra":"x"}'
seed batch "{\"transactions\":[$TX,$TX]}"
seed bare_batch "[$TX,{\"amount\":\"5\"},3]"
seed bad_fields '{"transaction_id":"","customer_id":1.5,"terminal_id":"a","vendor_id":"b","amount":"12.5","timestamp":"2023-02-30T00:00:00","currency":"eur","status":"x","metadata":[]}'
seed bad_numbers '{"amount":-1e400,"x":1e999,"y":01,"z":-}'
seed malformed '{"transaction_id": "tx-1", "amount": 12.5,}'
seed bad_string '{"a":"\udc00 \x \u12"}'
seed deep '{"metadata":[[[[[[[[[[[[[[[[{"a":[[[[[[[[[]]]]]]]]]}]]]]]]]]]]]]]]]]}'
seed not_object '[1,"two",null]'

# A dictionary of the contract's tokens helps the fuzzer reach every branch.
DICT="$WORK/json.dict"
cat >"$DICT" <<'EOF'
"\"transaction_id\""
"\"customer_id\""
"\"terminal_id\""
"\"vendor_id\""
"\"amount\""
"\"timestamp\""
"\"currency\""
"\"status\""
"\"metadata\""
"\"transactions\""
"\"accepted\""
"\"2024-05-01T12:00:00Z\""
"+02:00"
"true"
"false"
"null"
"\\u"
"\\ud83d\\ude00"
"e+308"
"1e400"
"{"
"}"
"["
"]"
":"
","
"\xef\xbb\xbf"
EOF

# --- fuzz -------------------------------------------------------------------------------
ARTIFACTS="$WORK/artifacts"
mkdir -p "$ARTIFACTS"
"$FUZZER" "$CORPUS" -dict="$DICT" -max_total_time="$SECONDS_TO_FUZZ" -rss_limit_mb=2048 \
  -timeout=10 -max_len=4096 -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 \
  >"$WORK/fuzz.log" 2>&1
status=$?
grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done )" "$WORK/fuzz.log"
if [ "$status" -eq 0 ] && ! ls "$ARTIFACTS" | grep -q .; then
  pass
else
  tail -n 60 "$WORK/fuzz.log" >&2
  for input in "$ARTIFACTS"/*; do
    [ -e "$input" ] || continue
    keep="${TMPDIR:-/tmp}/vigil-fuzz-$(basename "$input")"
    cp "$input" "$keep"
    echo "crashing input kept as $keep (replay: build the target as above, run it on that" \
      "file); first bytes:" >&2
    head -c 512 "$input" | od -c | head -n 20 >&2
  done
  fail "fuzzing found a problem (exit $status)"
fi
finish
