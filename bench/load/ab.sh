#!/usr/bin/env bash
# A/B of two builds under bench/load/run.sh's load, run by run interleaved (A, B, A, B, ...) so
# that a drift of the shared machine's speed falls on both alike. Prints the medians side by side.
# Usage: bench/load/ab.sh A_VIGIL B_VIGIL [seconds] [repeats] [modes...]   (default 8 3 sync async;
#        CONNS="32" for other connection counts than 1 32 256)
set -euo pipefail
cd "$(dirname "$0")/../.."
A="$1" B="$2"
SECONDS_PER_RUN="${3:-8}"
REPEATS="${4:-3}"
if [ $# -gt 4 ]; then MODES=("${@:5}"); else MODES=(sync async); fi
out=bench/load/results/ab.csv
mkdir -p bench/load/results
echo "build,mode,connections,run,rps,p50_ms,p99_ms,errors,non2xx,server_cpu_us_per_request,steal_pct" >"$out"
for mode in "${MODES[@]}"; do
  for conns in ${CONNS:-1 32 256}; do
    for run in $(seq "$REPEATS"); do
      for build in A B; do
        bin=$A; [ "$build" = B ] && bin=$B
        line=$(CONNS=$conns VIGIL="$bin" bench/load/run.sh "$SECONDS_PER_RUN" 1 "$mode" | grep "^$mode,")
        echo "$build,$line" | tee -a "$out"
      done
    done
  done
done
python3 - "$out" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
g = {}
for r in rows:
    g.setdefault((r["mode"], int(r["connections"])), {}).setdefault(r["build"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
print()
print("| mode | conns | A req/s | B req/s | B/A | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (mode, c), d in g.items():
    a, b = d["A"], d["B"]
    print(f"| {mode} | {c} | {med(a,'rps'):,.0f} | {med(b,'rps'):,.0f} | {med(b,'rps')/med(a,'rps'):.2f} | "
          f"{med(a,'p99_ms'):.2f} | {med(b,'p99_ms'):.2f} | {med(a,'server_cpu_us_per_request'):.0f} | "
          f"{med(b,'server_cpu_us_per_request'):.0f} |")
PY
