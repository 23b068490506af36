#!/usr/bin/env bash
# The reference design beside Vigil, in the same session: the Flask + scikit-learn random forest
# service of ../shared/peers/ (model loaded once, POST /predict of 16 features), under wrk as its
# own results were taken (-t2 -c16, a 3 s warm-up, then the timed run), on Flask's threaded
# server and on gunicorn with 2 sync workers. Prints one CSV line per server.
# Usage: bench/load/peer.sh [seconds]   (from the repository root; installs the peer's Debian
#        packages when missing; data and models go to $PEERS_DIR, default /tmp/vigil_peers)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-30}"
PEERS="${PEERS:-../shared/peers}"
[ -f "$PEERS/flask_app.py" ] || { echo "no reference design at $PEERS (set PEERS=...)" >&2; exit 1; }
PEERS="$(cd "$PEERS" && pwd)"
export PEERS_DIR="${PEERS_DIR:-/tmp/vigil_peers}"
export MODEL_PATH="$PEERS_DIR/sk_rf.joblib"  # the app's own default is /tmp/peers
mkdir -p "$PEERS_DIR"

# The peer runs on Debian's Python (/usr/bin/python3), not a python3 earlier on PATH.
need=()
for p in python3-sklearn python3-flask python3-pandas python3-joblib python3-xgboost gunicorn wrk; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -q "${need[@]}" >&2
fi

if [ ! -f "$PEERS_DIR/sk_rf.joblib" ]; then
  echo "peer: data and models (about a minute)" >&2
  /usr/bin/python3 "$PEERS/make_data.py" >&2
  /usr/bin/python3 "$PEERS/train.py" >&2
fi
/usr/bin/python3 "$PEERS/make_wrk_lua.py" >&2

echo "server,connections,rps,p50_ms,p99_ms,errors"
# flask: Flask's threaded server; gunicorn: 2 sync workers; gunicorn_jobs1: the same with the
# forest's n_jobs forced to 1 (the peer's fastest configuration).
for server in flask gunicorn gunicorn_jobs1; do
  port=18790
  if [ "$server" = flask ]; then
    PORT=$port /usr/bin/python3 "$PEERS/flask_app.py" >"$PEERS_DIR/server.log" 2>&1 &
  else
    jobs=""; [ "$server" = gunicorn_jobs1 ] && jobs=1
    RF_N_JOBS="$jobs" /usr/bin/gunicorn --chdir "$PEERS" -w 2 -k sync -b "127.0.0.1:$port" \
      flask_app:app >"$PEERS_DIR/server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  wrk -t2 -c16 -d3s -s "$PEERS_DIR/post.lua" "http://127.0.0.1:$port/predict" >/dev/null
  out=$(wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --latency -s "$PEERS_DIR/post.lua" \
    "http://127.0.0.1:$port/predict")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  # wrk prints latencies as 812.00us, 1.23ms or 1.02s.
  ms() { awk '{v=$0; if (v ~ /us$/) print v/1000; else if (v ~ /ms$/) print v+0; else print v*1000}' <<<"$1"; }
  rps=$(awk '/^Requests\/sec/{print int($2)}' <<<"$out")
  p50=$(ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  p99=$(ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  errors=$(awk '/Socket errors/{gsub(",",""); print $4+$6+$8+$10; f=1} END{if(!f) print 0}' <<<"$out")
  echo "$server,16,$rps,$p50,$p99,$errors"
done
