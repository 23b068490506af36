#!/usr/bin/env bash
# Load benchmark of `vigil serve` with wrk: req/s and p50/p99 at 1, 32 and 256 connections, full
# path (JSON, features, model, reasons, store), for --record sync and async. Also the server's
# CPU time per request, and the hypervisor's steal during the run (on a shared VM, a run with
# high steal measured the neighbours as much as Vigil).
# Usage: bench/load/run.sh [seconds per run] [repeats]   (from the repository root, after setup)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-10}"
REPEATS="${2:-3}"
VIGIL=./build/vigil
MODEL=models/gbdt.model
[ -f "$MODEL" ] || { echo "run scripts/setup.sh first (needs $MODEL)"; exit 1; }
PORT=18765
OUT=bench/load/results
mkdir -p "$OUT"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a process
# "steal total" jiffies of the whole machine: time the hypervisor gave this VM's CPUs to others.
steal_total() { awk '/^cpu /{print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
echo "mode,connections,run,rps,p50_ms,p99_ms,errors,non2xx,server_cpu_us_per_request,steal_pct"
for mode in sync async; do
  for conns in 1 32 256; do
    for run in $(seq "$REPEATS"); do
      data=$(mktemp -d)
      "$VIGIL" serve --model "$MODEL" --port "$PORT" --address 127.0.0.1 --data-dir "$data" \
        --record "$mode" >/dev/null 2>"$OUT/serve.log" &
      server=$!
      for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
      cpu0=$(cpu_ticks "$server")
      read -r steal0 total0 <<<"$(steal_total)"
      line=$(wrk -t"$((conns < 2 ? 1 : 2))" -c"$conns" -d"${SECONDS_PER_RUN}s" --latency -s bench/load/score.lua \
        "http://127.0.0.1:$PORT" | grep '^RESULT')
      cpu1=$(cpu_ticks "$server")
      read -r steal1 total1 <<<"$(steal_total)"
      steal_pct=$(( (steal1 - steal0) * 100 / (total1 > total0 ? total1 - total0 : 1) ))
      kill -TERM "$server"; wait "$server" || true
      rm -rf "$data"
      requests=$(sed -E 's/RESULT requests=([0-9]+) .*/\1/' <<<"$line")
      # The server's CPU time (user + system, all threads) per request: steadier than req/s on a
      # shared machine, and what a change to the request path moves.
      cpu_us=$(( (cpu1 - cpu0) * 1000000 / TICKS / (requests > 0 ? requests : 1) ))
      echo "$mode,$conns,$run,$(sed -E 's/RESULT requests=[0-9]+ duration_s=[0-9.]+ rps=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+) errors=([0-9]+) non2xx=([0-9]+)/\1,\2,\3,\4,\5/' <<<"$line"),$cpu_us,$steal_pct"
    done
  done
done
