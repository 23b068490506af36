#!/usr/bin/env bash
# Load benchmark of `vigil serve` with wrk: req/s and p50/p99 at 1, 32 and 256 connections, full
# path (JSON, features, model, reasons, journal), for --record sync and async; and the same load
# on bare_json_server (the same HTTP server, router, parsing and reply size, no engine): the
# ceiling, and Vigil's throughput as a fraction of it, a ratio that travels between machines.
# Also the server's CPU time per request, and the hypervisor's steal during the run (on a
# shared VM, a run with high steal measured the neighbours as much as Vigil).
# Usage: bench/load/run.sh [seconds per run] [repeats] [modes...]   (from the repository root,
#        after setup; modes: sync async bare, default all three; also sync-full: --record sync
#        --sync full, each reply after its record is fdatasynced; sync-noauth: sync with
#        --auth off, the peer that prices authentication: every other mode sends a scorer's API
#        key; sync-tls: sync over HTTPS, TLS 1.3 with a P-256 certificate made here, the peer of
#        sync that prices TLS once the connections are open)
# Prints one CSV line per run, then a table of medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-10}"
REPEATS="${2:-3}"
if [ $# -gt 2 ]; then MODES=("${@:3}"); else MODES=(sync async bare); fi
VIGIL="${VIGIL:-./build/vigil}"  # VIGIL=/other/build/vigil: an A/B against another build
BARE=./build/bare_json_server
MODEL=models/gbdt.model
[ -f "$MODEL" ] || { echo "run scripts/setup.sh first (needs $MODEL)"; exit 1; }
PORT=18765
OUT=bench/load/results
mkdir -p "$OUT"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a process
# "steal total" jiffies of the whole machine: time the hypervisor gave this VM's CPUs to others.
steal_total() { awk '/^cpu /{print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
family=$(lscpu | sed -n 's/^CPU family: *//p' | head -1)
avx512=$(grep -q avx512f /proc/cpuinfo && echo "AVX-512" || echo "no AVX-512")
echo "# $cpu (family $family, $avx512), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
csv="$OUT/last.csv"
echo "mode,connections,run,rps,p50_ms,p99_ms,errors,non2xx,server_cpu_us_per_request,steal_pct" | tee "$csv"
for mode in "${MODES[@]}"; do
  for conns in ${CONNS:-1 32 256}; do
    for run in $(seq "$REPEATS"); do
      data=$(mktemp -d)
      if [ "$mode" = bare ]; then
        "$BARE" "$PORT" >/dev/null 2>"$OUT/serve.log" &
      else
        record=(--record "$mode")
        [ "$mode" = sync-full ] && record=(--record sync --sync full)
        [ "$mode" = sync-noauth ] && record=(--record sync --auth off)
        if [ "$mode" = sync-tls ]; then
          [ -f "$OUT/tls-key.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -days 30 -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
            -keyout "$OUT/tls-key.pem" -out "$OUT/tls-cert.pem" 2>/dev/null
          chmod 600 "$OUT/tls-key.pem"
          record=(--record sync --tls-cert "$OUT/tls-cert.pem" --tls-key "$OUT/tls-key.pem")
        fi
        "$VIGIL" serve --model "$MODEL" --port "$PORT" --address 127.0.0.1 --data-dir "$data" \
          "${record[@]}" >/dev/null 2>"$OUT/serve.log" &
      fi
      server=$!
      scheme=http
      [ "$mode" = sync-tls ] && scheme=https
      # A scorer's key, as a payment service would hold (the server made the key store at its start).
      export VIGIL_KEY=""
      if [ "$mode" != bare ] && [ "$mode" != sync-noauth ]; then
        for _ in $(seq 100); do [ -s "$data/admin.key" ] && break; sleep 0.1; done
        # (a build from before API keys has no `keys` command, and takes any request)
        VIGIL_KEY=$("$VIGIL" keys create --role scorer --name bench --data-dir "$data" 2>/dev/null) || true
      fi
      for _ in $(seq 100); do
        code=$(curl -s -k -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
          -H "Authorization: Bearer $VIGIL_KEY" \
          --data '{"transaction_id":"warm","customer_id":"1","terminal_id":"1","amount":1,"timestamp":"2018-08-01T00:00:00Z"}' \
          "$scheme://127.0.0.1:$PORT/v1/score" || true)
        [ "$code" = 200 ] && break
        sleep 0.1
      done
      cpu0=$(cpu_ticks "$server")
      read -r steal0 total0 <<<"$(steal_total)"
      line=$(wrk -t"$((conns < 2 ? 1 : 2))" -c"$conns" -d"${SECONDS_PER_RUN}s" --latency -s bench/load/score.lua \
        "$scheme://127.0.0.1:$PORT" | grep '^RESULT')
      cpu1=$(cpu_ticks "$server")
      read -r steal1 total1 <<<"$(steal_total)"
      steal_pct=$(( (steal1 - steal0) * 100 / (total1 > total0 ? total1 - total0 : 1) ))
      kill -TERM "$server"; wait "$server" || true
      rm -rf "$data"
      requests=$(sed -E 's/RESULT requests=([0-9]+) .*/\1/' <<<"$line")
      # The server's CPU time (user + system, all threads) per request: steadier than req/s on a
      # shared machine, and what a change to the request path moves.
      cpu_us=$(( (cpu1 - cpu0) * 1000000 / TICKS / (requests > 0 ? requests : 1) ))
      echo "$mode,$conns,$run,$(sed -E 's/RESULT requests=[0-9]+ duration_s=[0-9.]+ rps=([0-9]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+) errors=([0-9]+) non2xx=([0-9]+)/\1,\2,\3,\4,\5/' <<<"$line"),$cpu_us,$steal_pct" | tee -a "$csv"
    done
  done
done
# Medians per mode and connection count; "of bare" is the median req/s over bare's median.
python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = {}
for r in rows:
    med.setdefault((r["mode"], int(r["connections"])), []).append(r)
def m(rs, k): return statistics.median(float(r[k]) for r in rs)
print()
print("| mode | conns | req/s | p50 ms | p99 ms | CPU µs/req | errors | of bare |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for (mode, c), rs in med.items():
    bare = med.get(("bare", c))
    ratio = f"{m(rs, 'rps') / m(bare, 'rps'):.2f}" if bare and mode != "bare" else ""
    errs = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
    print(f"| {mode} | {c} | {m(rs, 'rps'):,.0f} | {m(rs, 'p50_ms'):.2f} | {m(rs, 'p99_ms'):.2f} | "
          f"{m(rs, 'server_cpu_us_per_request'):.0f} | {errs} | {ratio} |")
PY
