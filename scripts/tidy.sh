#!/usr/bin/env bash
# Runs clang-tidy (Debian's clang-tidy-14) with the checks of .clang-tidy over our sources and
# fails on any warning. Uses the compile commands of a clang build folder (default build-tsa,
# configured here with clang++-14 when missing), two files at a time.
# Usage: scripts/tidy.sh [-j N] [-p BUILD_DIR] [FILE...]   (default: every src/**/*.cc the
# build compiles)
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2
build=build-tsa
while getopts "j:p:" opt; do
  case "$opt" in
    j) jobs="$OPTARG" ;;
    p) build="$OPTARG" ;;
    *) echo "usage: $0 [-j N] [-p BUILD_DIR] [FILE...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

tidy="$(command -v clang-tidy-14 || true)"
[ -n "$tidy" ] || { echo "tidy: clang-tidy-14 is missing (scripts/install-deps.sh)" >&2; exit 2; }
if [ ! -f "$build/compile_commands.json" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
    -DVIGIL_BUILD_BENCH=OFF >/dev/null
fi

# The files the build compiles (so each is checked with its own flags): *_fuzz.cc, built by
# tests/fuzz_test.sh alone, is not among them.
mapfile -t compiled < <(python3 -c '
import json, os, sys
root = os.getcwd()
for e in json.load(open(sys.argv[1])):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if f.startswith("src/") and f.endswith(".cc"):
        print(f)' "$build/compile_commands.json" | sort -u)
if [ $# -gt 0 ]; then files=("$@"); else files=("${compiled[@]}"); fi
[ ${#files[@]} -gt 0 ] || { echo "tidy: no source in $build/compile_commands.json" >&2; exit 2; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "tidy: ${#files[@]} files, $jobs at a time, $("$tidy" --version | grep -o 'version [0-9.]*')"
# Each file's report goes to its own log, printed whole afterwards (no interleaving); a warning
# of an enabled check is an error, so clang-tidy's exit status tells.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c '
  log="$2/$(echo "$3" | tr / _).log"
  "$1" -p "$4" --quiet --warnings-as-errors="*" "$3" >"$log" 2>&1 || echo "$3" >>"$2/failed"' \
  sh "$tidy" "$out" {} "$build"

status=0
if [ -s "$out/failed" ]; then
  # Header findings repeat once per file that includes the header: print each once.
  cat "$out"/*.log | grep -E '^[^ ].*: (warning|error): ' | sort -u
  echo
  echo "tidy: clang-tidy failed on $(wc -l <"$out/failed") of ${#files[@]} files:" \
    "$(sort "$out/failed" | tr '\n' ' ')"
  echo "(the full report of one: $tidy -p $build FILE)"
  status=1
else
  echo "tidy: no warnings"
fi
exit "$status"
