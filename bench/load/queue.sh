#!/usr/bin/env bash
# Load benchmark of the queue API of `vigil serve` with wrk (bench/load/queue.lua), per backend:
# pushes one message a request and batched (100), then leased pulls + acks one and 100 at a
# time, at 1 and 32 connections; beside them, in the same run, bare_json_server's push route
# (the same HTTP server, router and body parsing, no queue): single pushes as a fraction of it.
# Then the processor end to end: `vigil process --mock N` (TQ1 -> engine -> PQ1, each
# transaction recorded and its prediction pushed before the ack), per backend, with 2 and 4
# worker threads (PROCESS_THREADS; the "conns" column of the table).
# Usage: bench/load/queue.sh [seconds per run] [repeats] [backends...]   (from the repository
#        root, after setup; backends: embedded nats, default both)
# Prints one CSV line per run, then a table of medians (messages per second).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-5}"
REPEATS="${2:-3}"
if [ $# -gt 2 ]; then BACKENDS=("${@:3}"); else BACKENDS=(embedded nats); fi
VIGIL="${VIGIL:-./build/vigil}"
BARE=./build/bare_json_server
MODEL=models/gbdt.model
PROCESS_N="${PROCESS_N:-100000}"
# Processor worker threads to measure (a worker waits for the backend's round trips, so a
# networked backend wants more of them than the cores).
PROCESS_THREADS="${PROCESS_THREADS:-2 4}"
[ -f "$MODEL" ] || { echo "run scripts/setup.sh first (needs $MODEL)"; exit 1; }
PORT=18766
NATS_PORT=14299
OUT=bench/load/results
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
avx512=$(grep -q avx512f /proc/cpuinfo && echo "AVX-512" || echo "no AVX-512")
echo "# $cpu ($avx512), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
csv="$OUT/queue.csv"
echo "backend,case,connections,run,messages_per_s,p50_ms,p99_ms,errors,non2xx" | tee "$csv"

# wait_http [DATA_DIR]: waits for the server; with DATA_DIR, wrk and curl send its admin key.
wait_http() {
  export VIGIL_KEY=""
  if [ -n "${1:-}" ]; then
    for _ in $(seq 100); do [ -s "$1/admin.key" ] && break; sleep 0.1; done
    VIGIL_KEY=$(cat "$1/admin.key")
  fi
  for _ in $(seq 100); do
    curl -s -o /dev/null -H "Authorization: Bearer $VIGIL_KEY" "http://127.0.0.1:$PORT/api/queues" && return 0
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data '{"content":1}' \
      "http://127.0.0.1:$PORT/api/queues/WARM/push" && return 0
    sleep 0.1
  done
  echo "server did not start: $(tail -3 "$WORK/serve.log")" >&2
  exit 1
}
# load BACKEND CASE MODE BATCH CONNS RUN
load() {
  local line
  line=$(QUEUE_MODE="$3" QUEUE_BATCH="$4" wrk -t"$(($5 < 2 ? 1 : 2))" -c"$5" -d"${SECONDS_PER_RUN}s" --latency \
    -s bench/load/queue.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
  echo "$1,$2,$5,$6,$(sed -E 's/RESULT requests=[0-9]+ duration_s=[0-9.]+ mps=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+) errors=([0-9]+) non2xx=([0-9]+) .*/\1,\2,\3,\4,\5/' <<<"$line")" | tee -a "$csv"
}

for run in $(seq "$REPEATS"); do
  "$BARE" "$PORT" >/dev/null 2>"$WORK/serve.log" &
  bare=$!
  wait_http
  for conns in 1 32; do load bare push1 push 1 "$conns" "$run"; done
  kill -TERM "$bare"; wait "$bare" || true
  for backend in "${BACKENDS[@]}"; do
    data="$WORK/data-$backend-$run"
    mkdir -p "$data"
    # Room for every message the push cases leave for the pull cases (the default cap is 1 GiB).
    queue_args=(--queue-max-memory-bytes $((8 << 30)))
    if [ "$backend" = nats ]; then
      nats=$(bash scripts/nats-server.sh "$WORK/nats-$run" "$NATS_PORT")
      PIDS+=("$nats")
      queue_args=(--queue "nats://127.0.0.1:$NATS_PORT")
      process_args=(--queue "nats://127.0.0.1:$NATS_PORT")
    fi
    "$VIGIL" serve --model "$MODEL" --port "$PORT" --address 127.0.0.1 --data-dir "$data" "${queue_args[@]}" \
      >/dev/null 2>"$WORK/serve.log" &
    server=$!
    wait_http "$data"
    for conns in 1 32; do load "$backend" push1 push 1 "$conns" "$run"; done
    for conns in 1 32; do load "$backend" push100 push 100 "$conns" "$run"; done
    for conns in 1 32; do load "$backend" pullack1 pullack 1 "$conns" "$run"; done
    for conns in 1 32; do load "$backend" pullack100 pullack 100 "$conns" "$run"; done
    kill -TERM "$server"; wait "$server" || true
    # The processor end to end, in its own process on the same backend.
    [ "$backend" = nats ] || process_args=()
    pdata="$WORK/process-$backend-$run"
    mkdir -p "$pdata"
    for threads in $PROCESS_THREADS; do
      rm -rf "$pdata" && mkdir -p "$pdata"
      t=$("$VIGIL" process --model "$MODEL" --data-dir "$pdata" "${process_args[@]}" --threads "$threads" --mock "$PROCESS_N" \
        2>>"$WORK/serve.log" | sed -n 's/^Processing time: \([0-9.]*\) seconds$/\1/p')
      echo "$backend,process,$threads,$run,$(python3 -c "print(round($PROCESS_N / $t))"),,,0,0" | tee -a "$csv"
    done
    if [ "$backend" = nats ]; then kill "$nats"; wait "$nats" 2>/dev/null || true; fi
  done
done
python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["backend"], r["case"], int(r["connections"])), []).append(r)
def m(rs, k):
    v = [float(r[k]) for r in rs if r[k]]
    return statistics.median(v) if v else float("nan")
print()
print("| backend | case | conns | messages/s | p50 ms | p99 ms | errors | push1 of bare |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (b, case, c), rs in groups.items():
    bare = groups.get(("bare", "push1", c))
    ratio = f"{m(rs, 'messages_per_s') / m(bare, 'messages_per_s'):.2f}" if bare and case == "push1" and b != "bare" else ""
    errs = sum(int(r["errors"] or 0) + int(r["non2xx"] or 0) for r in rs)
    print(f"| {b} | {case} | {c} | {m(rs, 'messages_per_s'):,.0f} | {m(rs, 'p50_ms'):.2f} | {m(rs, 'p99_ms'):.2f} | {errs} | {ratio} |")
PY
