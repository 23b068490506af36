#!/usr/bin/env bash
# Starts a local NATS server with JetStream for `vigil serve --queue nats://127.0.0.1:PORT`:
# Debian's nats-server (scripts/install-deps.sh installs it), its store in DIR, listening on
# 127.0.0.1:PORT, with a max_payload that holds Vigil's largest message (1 MiB) and its headers.
# Prints the server's pid; `kill PID` stops it (kill -9 loses no acknowledged message).
# Usage: scripts/nats-server.sh [DIR (default data/nats)] [PORT (default 4222)]
set -euo pipefail
DIR="${1:-data/nats}"
PORT="${2:-4222}"
command -v nats-server >/dev/null || { echo "nats-server is not installed: run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$DIR"
cat >"$DIR/nats.conf" <<CONF
listen: 127.0.0.1:$PORT
max_payload: 2MB
jetstream {
  store_dir: "$DIR/store"
}
CONF
nats-server -c "$DIR/nats.conf" >>"$DIR/nats.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then echo "$PID"; exit 0; fi
  kill -0 "$PID" 2>/dev/null || { echo "nats-server exited: $(tail -3 "$DIR/nats.log")" >&2; exit 1; }
  sleep 0.1
done
echo "nats-server did not listen on $PORT: $(tail -3 "$DIR/nats.log")" >&2
kill "$PID"
exit 1
