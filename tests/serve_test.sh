#!/usr/bin/env bash
# End-to-end: `vigil serve` for real — scoring, idempotency, records, bad input, metrics through
# promtool, hot swap under load, kill -9 durability, graceful stop.
# Usage: serve_test.sh path/to/vigil
set -uo pipefail
VIGIL="$1"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

"$VIGIL" simulate --customers 300 --terminals 600 --days 60 --radius 10 --quiet --out "$WORK/tx.csv" >/dev/null
START=$(sed -n 2p "$WORK/tx.csv" | cut -d, -f2 | cut -c1-10)
"$VIGIL" train --data "$WORK/tx.csv" --train-start "$(date -u -d "$START + 25 days" +%F)" --quiet \
  --param n_estimators=20 --review-rate 0.05 --out "$WORK/a.model" >/dev/null || fail "train a"
"$VIGIL" train --data "$WORK/tx.csv" --train-start "$(date -u -d "$START + 30 days" +%F)" --quiet \
  --param n_estimators=10 --out "$WORK/b.model" >/dev/null || fail "train b"
mkdir -p "$WORK/data"

PORT=""
SERVER=""
start_server() {  # start_server extra-args...: sets SERVER and PORT
  # Emptied here, not by the background job's redirection, which may come after the first read
  # below: the last server's port would be read.
  : >"$WORK/serve.out"
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/data" "$@" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 100); do
    PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$WORK/serve.out")
    [ -n "$PORT" ] && use_admin_key "$WORK/data" && return 0
    sleep 0.1
  done
  fail "server did not start: $(cat "$WORK/serve.err")"
  return 1
}
URL() { echo "http://127.0.0.1:$PORT$1"; }
# post PATH BODY [curl args...] -> prints "STATUS BODY"
post() {
  local path="$1" body="$2"; shift 2
  curl -s -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' "$@" \
    --data-binary "$body" "$(URL "$path")"
}
tx() {  # tx ID CUSTOMER AMOUNT [TIME]
  printf '{"transaction_id":"%s","customer_id":"%s","terminal_id":"t9","amount":%s,"timestamp":"%s","currency":"EUR","metadata":{"channel":"web"}}' \
    "$1" "$2" "$3" "${4:-2018-06-01T12:00:00Z}"
}
# Records in the index (SQLite), once the indexer has caught up with the journal (the backlog
# gauge reads 0; a stopped server indexed everything before it exited).
records() {
  local i backlog
  for i in $(seq 200); do
    backlog=$(curl -s "$(URL /metrics)" 2>/dev/null | sed -n 's/^vigil_store_backlog //p')
    [ -z "$backlog" ] || [ "$backlog" = 0 ] && break
    sleep 0.05
  done
  sqlite3 "$WORK/data/vigil.db" "SELECT count(*) FROM transactions" 2>/dev/null
}

start_server || exit 1

# --- scoring ---------------------------------------------------------------------------------
check "score 200" test "$(post /v1/score "$(tx t1 alice 120.5)")" = 200
check "reply fields" jq -e '.transaction_id == "t1" and (.score >= 0 and .score <= 1) and
  (.decision | IN("approve", "review", "decline")) and (.reasons | type) == "array" and
  .anomaly_score > 0 and .model.name == "a" and (.model.version | length) > 0 and .latency_us >= 0' \
  "$WORK/resp" >/dev/null
cp "$WORK/resp" "$WORK/first"
check "repeated transaction_id: 200" test "$(post /v1/score "$(tx t1 alice 999)")" = 200
check "repeated transaction_id returns the first reply" cmp -s "$WORK/resp" "$WORK/first"
check "Idempotency-Key" test "$(post /v1/score "$(tx t2 bob 10)" -H 'Idempotency-Key: k-1')" = 200
cp "$WORK/resp" "$WORK/k1"
post /v1/score "$(tx t2 bob 10)" -H 'Idempotency-Key: k-1' >/dev/null
check "same Idempotency-Key returns the first reply" cmp -s "$WORK/resp" "$WORK/k1"
check "an Idempotency-Key reused for another transaction: 409" \
  test "$(post /v1/score "$(tx t2-other bob 10)" -H 'Idempotency-Key: k-1')" = 409
check "409 names the key" jq -e '.error.code == "already_exists" and (.error.message | contains("k-1"))' \
  "$WORK/resp" >/dev/null
check "a key equal to another transaction's id is not a replay of it" \
  test "$(post /v1/score "$(tx t3 dan 10)" -H 'Idempotency-Key: t1')" = 200
check "... it gets its own reply" jq -e '.transaction_id == "t3"' "$WORK/resp" >/dev/null
check "the repeats changed no state" test "$(records)" = 3
check "Idempotency-Key on a batch: 400" \
  test "$(post /v1/score/batch "{\"transactions\":[$(tx kb1 carol 5)]}" -H 'Idempotency-Key: kb')" = 400
check "GET /v1/transactions/{id}" test "$(curl -s -o "$WORK/resp" -w '%{http_code}' "$(URL /v1/transactions/t1)")" = 200
check "transaction with its prediction, unknown fields kept" jq -e \
  '.transaction.metadata.channel == "web" and .prediction.transaction_id == "t1"' "$WORK/resp" >/dev/null
check "the features the model saw, by name" jq -e \
  '.features.amount == 120.5 and .features.customer_nb_tx_1d == 1 and (.features | length) > 15' \
  "$WORK/resp" >/dev/null
check "HEAD on a GET route: 200, no body" bash -c \
  "curl -s -I '$(URL /v1/transactions/t1)' | head -1 | grep -q 200"
check "an id with a space, '?', '#' and non-ASCII can be fetched once scored" bash -c \
  "test \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
     --data-binary '$(tx 'a b?#é' erin 3)' '$(URL /v1/score)')\" = 200 &&
   curl -sf '$(URL '/v1/transactions/a%20b%3F%23%C3%A9')' | jq -e '.transaction.transaction_id == \"a b?#é\"' >/dev/null"
check "a malformed escape in the path: 400" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$(URL /v1/transactions/a%zz)")" = 400
check "unknown transaction 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$(URL /v1/transactions/zz)")" = 404
check "batch" test "$(post /v1/score/batch "{\"transactions\":[$(tx b1 carol 5),$(tx b2 carol 6),$(tx t1 alice 1)]}")" = 200
check "batch results in order, replay included" jq -e \
  '(.results | length) == 3 and .results[0].transaction_id == "b1" and .results[2].transaction_id == "t1"' \
  "$WORK/resp" >/dev/null
check "vendor_id accepted" test "$(post /v1/score '{"transaction_id":"v1","customer_id":"d","vendor_id":"x","amount":3,"timestamp":"2018-06-01T12:00:00Z"}')" = 200

# --- bad input: JSON errors, never 5xx, nothing recorded --------------------------------------
before=$(records)
bad() {  # bad STATUS FIELD-or-"" BODY [curl args]
  local want="$1" field="$2" body="$3"; shift 3
  local got
  got=$(post /v1/score "$body" "$@")
  if [ "$got" != "$want" ]; then fail "bad input $body: status $got, want $want"; return; fi
  if ! jq -e '.error.code and .error.message and (.error.details | type) == "array"' "$WORK/resp" >/dev/null; then
    fail "bad input $body: not the JSON error shape: $(head -c 300 "$WORK/resp")"; return
  fi
  if [ -n "$field" ] && ! jq -e --arg f "$field" 'any(.error.details[]; .field == $f)' "$WORK/resp" >/dev/null; then
    fail "bad input $body: no detail for $field: $(head -c 300 "$WORK/resp")"; return
  fi
  pass
}
bad 400 "" '{"transaction_id": "x",'
bad 400 "" '[1,2]'
bad 400 "" ''
bad 400 amount '{"transaction_id":"x1","customer_id":"c","terminal_id":"t","amount":"12","timestamp":"2018-06-01T12:00:00Z"}'
bad 400 amount '{"transaction_id":"x2","customer_id":"c","terminal_id":"t","amount":-5,"timestamp":"2018-06-01T12:00:00Z"}'
bad 400 amount '{"transaction_id":"x3","customer_id":"c","terminal_id":"t","amount":1e300,"timestamp":"2018-06-01T12:00:00Z"}'
bad 400 "" '{"transaction_id":"x4","customer_id":"c","terminal_id":"t","amount":NaN,"timestamp":"2018-06-01T12:00:00Z"}'
bad 400 timestamp '{"transaction_id":"x5","customer_id":"c","terminal_id":"t","amount":5,"timestamp":"2018-02-30T12:00:00Z"}'
bad 400 timestamp '{"transaction_id":"x6","customer_id":"c","terminal_id":"t","amount":5,"timestamp":"yesterday"}'
bad 400 customer_id '{"transaction_id":"x7","terminal_id":"t","amount":5,"timestamp":"2018-06-01T12:00:00Z"}'
bad 400 transaction_id '{"transaction_id":"","customer_id":"c","terminal_id":"t","amount":5,"timestamp":"2018-06-01T12:00:00Z"}'
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: text/plain' \
  --data-binary "$(tx x8 c 5)" "$(URL /v1/score)")
check "wrong content type: 415" test "$code" = 415
check "415 is a JSON error" jq -e '.error.code == "unsupported_media_type"' "$WORK/resp" >/dev/null
check "application/jsonp: 415" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
  -H 'Content-Type: application/jsonp' --data-binary "$(tx x9 c 5)" "$(URL /v1/score)")" = 415
check "Content-Type is case-insensitive and takes parameters" test "$(curl -s -o /dev/null -w '%{http_code}' \
  -X POST -H 'Content-Type: Application/JSON; charset=UTF-8' --data-binary "$(tx ct1 c 5)" "$(URL /v1/score)")" = 200
bad 400 timestamp '{"transaction_id":"x10","customer_id":"c","terminal_id":"t","amount":5,"timestamp":"0001-01-01T00:00:00Z"}'
bad 400 amount '{"transaction_id":"x11","customer_id":"c","terminal_id":"t","amount":1e-400,"timestamp":"2018-06-01T12:00:00Z"}'
bad 400 Idempotency-Key "$(tx x12 c 5)" -H "Idempotency-Key: $(printf 'k%.0s' $(seq 300))"
before=$(records)
head -c 1100000 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @"$WORK/big.json" "$(URL /v1/score)")
check "body over 1 MiB: 413" test "$code" = 413
check "413 is a JSON error" jq -e '.error.code' "$WORK/resp" >/dev/null
check "unknown route 404" test "$(curl -s -o "$WORK/resp" -w '%{http_code}' "$(URL /v2/nothing)")" = 404
check "404 is a JSON error" jq -e '.error.code == "not_found"' "$WORK/resp" >/dev/null
check "wrong method 405" test "$(curl -s -o "$WORK/resp" -w '%{http_code}' "$(URL /v1/score)")" = 405
{ printf '{"transactions":['; for i in $(seq 1001); do printf '%s,' "$(tx bb$i c 1)"; done | sed 's/,$//'; printf ']}'; } >"$WORK/batch.json"
check "batch over the limit: 400" test "$(post /v1/score/batch @"$WORK/batch.json")" = 400
check "bad input recorded nothing" test "$(records)" = "$before"

# --- health and metrics ---------------------------------------------------------------------
check "healthz" test "$(curl -s -o /dev/null -w '%{http_code}' "$(URL /healthz)")" = 200
check "readyz" test "$(curl -s -o /dev/null -w '%{http_code}' "$(URL /readyz)")" = 200
check "readyz names the model and the kernel auto chose" bash -c \
  "curl -s '$(URL /readyz)' | jq -e '.model.name == \"a\" and (.model.kernel | test(\"^(scalar|avx2|avx512)\$\"))' >/dev/null"
curl -s "$(URL /metrics)" >"$WORK/metrics.txt"
check "metrics pass promtool check metrics" bash -c "promtool check metrics <'$WORK/metrics.txt' >/dev/null 2>&1 || { promtool check metrics <'$WORK/metrics.txt'; false; }"
check "metrics count requests by route and status" grep -q 'vigil_http_requests_total{route="/v1/score",status="400"}' "$WORK/metrics.txt"
check "metrics count predictions by decision" grep -q '^vigil_predictions_total{model="a",decision=' "$WORK/metrics.txt"
check "metrics have the score histogram and store backlog" bash -c \
  "grep -q '^vigil_score_bucket' '$WORK/metrics.txt' && grep -q '^vigil_store_backlog ' '$WORK/metrics.txt'"

# --- hot swap under load: no request fails ------------------------------------------------------
cat >"$WORK/load.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"transaction_id":"w%d-%d","customer_id":"c%d","terminal_id":"t%d","amount":%d.25,"timestamp":"2018-06-02T10:00:00Z"}',
    math.random(1, 1000000000), counter, counter % 97, counter % 13, counter % 300)
  return wrk.format("POST", "/v1/score", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("ADMIN_KEY")}, body)
end
LUA
ADMIN_KEY="$ADMIN_KEY" wrk -t2 -c8 -d4s -s "$WORK/load.lua" "$(URL /)" >"$WORK/wrk.txt" 2>&1 &
WRK=$!
sleep 0.5
check "reload to model b (by name)" test "$(post /v1/admin/reload '{"model":"b"}')" = 200
check "reload names the new model" jq -e '.model.name == "b"' "$WORK/resp" >/dev/null
sleep 0.5
kill -HUP "$SERVER"
sleep 0.5
check "reload back to a" test "$(post /v1/admin/reload '{"model":"a.model"}')" = 200
check "reload of a missing model: 404" test "$(post /v1/admin/reload '{"model":"none"}')" = 404
check "reload takes a name, never a path" test "$(post /v1/admin/reload '{"model":"/etc/passwd"}')" = 400
check "... nor a path inside the models folder" test "$(post /v1/admin/reload "{\"model\":\"../$(basename "$WORK")/a\"}")" = 400
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$WORK/shadow.model"
check "a file that is not a model: 400" test "$(post /v1/admin/reload '{"model":"shadow"}')" = 400
check "... and the reply does not quote it" bash -c "! grep -q root '$WORK/resp'"
mkfifo "$WORK/fifo.model"
check "a FIFO is refused at once, never read" test "$(post /v1/admin/reload '{"model":"fifo"}' --max-time 10)" = 400
ln -s /dev/zero "$WORK/zero.model"
check "/dev/zero is refused at once" test "$(post /v1/admin/reload '{"model":"zero"}' --max-time 10)" = 400
printf '{"model":"evil\\"name"}' >"$WORK/evil.json"
check "a model name with a quote: 400" test "$(post /v1/admin/reload @"$WORK/evil.json")" = 400
check "... and the reply is valid JSON" jq -e .error "$WORK/resp" >/dev/null
wait "$WRK"
check "load ran" grep -q 'Requests/sec' "$WORK/wrk.txt"
check "no request failed during the swaps" bash -c "! grep -qE 'Non-2xx|Socket errors' '$WORK/wrk.txt' || { cat '$WORK/wrk.txt'; false; }"
check "the model changed under load" grep -q '"msg":"model reloaded","model":"b"' "$WORK/serve.err"

# --- graceful stop -----------------------------------------------------------------------------
count_before_stop=$(curl -s "$(URL /metrics)" | sed -n 's/^vigil_store_committed_records //p')
kill -TERM "$SERVER"
wait "$SERVER"
check "SIGTERM exits 0" test $? -eq 0
check "stop is logged" grep -q '"msg":"stopped"' "$WORK/serve.err"

# --- restart: state and replies come back from the store --------------------------------------
start_server || exit 1
post /v1/score "$(tx t1 alice 5)" >/dev/null
check "after a restart a repeated id still returns the first reply" cmp -s "$WORK/resp" "$WORK/first"
records_after_restart=$(records)
post /v1/score "$(tx t2 bob 10)" -H 'Idempotency-Key: k-1' >/dev/null
check "after a restart a repeated Idempotency-Key returns the first reply (from the store)" \
  cmp -s "$WORK/resp" "$WORK/k1"
check "after a restart a key reused for another transaction is still refused" \
  test "$(post /v1/score "$(tx t2-after-restart bob 10)" -H 'Idempotency-Key: k-1')" = 409
check "replays after the restart recorded nothing" test "$(records)" = "$records_after_restart"
check "a graceful stop wrote a snapshot: the restart loaded it and replayed nothing" \
  grep -qE '"snapshot_through":[1-9][0-9]*,"replayed":0,' "$WORK/serve.err"
check "the snapshot is in the data folder" bash -c "ls '$WORK/data/snapshots/'*.snap >/dev/null"

# --- kill -9: nothing answered is lost --------------------------------------------------------
: >"$WORK/answered"
(
  for i in $(seq 1 100000); do
    code=$(post /v1/score "$(tx k$i cust$((i % 50)) $((i % 400)).5)")
    [ "$code" = 200 ] && echo "k$i" >>"$WORK/answered"
  done
) &
LOOP=$!
for _ in $(seq 200); do
  [ "$(wc -l <"$WORK/answered")" -ge 30 ] && break
  sleep 0.1
done
kill -9 "$SERVER"
sleep 0.3
kill "$LOOP" 2>/dev/null
wait "$LOOP" 2>/dev/null
answered=$(wc -l <"$WORK/answered")
check "some requests were answered before the kill" test "$answered" -gt 10
start_server || exit 1
lost=0
while read -r id; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$(URL "/v1/transactions/$id")")
  [ "$code" = 200 ] || { lost=$((lost + 1)); echo "lost $id ($code)" >&2; }
done <"$WORK/answered"
check "every answered transaction survived kill -9 ($answered answered)" test "$lost" -eq 0
check "after kill -9 the start replayed the journal after the last snapshot" \
  grep -qE '"msg":"engine ready".*"replayed":[1-9]' "$WORK/serve.err"
kill -TERM "$SERVER"; wait "$SERVER"

# --- async recording ----------------------------------------------------------------------------
start_server --record async --kernel scalar || exit 1
check "async mode scores" test "$(post /v1/score "$(tx as1 zed 7)")" = 200
check "--kernel scalar: the model runs the scalar kernel" bash -c \
  "curl -s '$(URL /readyz)' | jq -e '.model.kernel == \"scalar\"' >/dev/null"
kill -TERM "$SERVER"; wait "$SERVER"
check "async records are flushed on a graceful stop" test \
  "$(sqlite3 "$WORK/data/vigil.db" "SELECT count(*) FROM transactions WHERE transaction_id='as1'")" = 1

# --- bad start ----------------------------------------------------------------------------------
"$VIGIL" serve --model "$WORK/none.model" --port 0 --data-dir "$WORK/data" >/dev/null 2>"$WORK/err" &&
  fail "serve with a missing model exits 0"
check "missing model is a clear error" grep -q "none.model" "$WORK/err"
expect_error "an unknown VIGIL_KERNEL is a clear error" "unknown kernel 'avx3'" \
  env VIGIL_KERNEL=avx3 "$VIGIL" serve --model "$WORK/a.model" --port 0 --data-dir "$WORK/data"
check "serve --help has --kernel" bash -c "'$VIGIL' serve --help | grep -q -- '--kernel'"

finish
