#!/usr/bin/env bash
# End-to-end: the queue API of `vigil serve` on the embedded queue, and the processor — the
# reference queue service's contract (push 201, pull 200 / 404 with "content"), leases, acks,
# nacks, dead letters, bad input, kill -9 under a push/pull load, and `serve --process` scoring
# reference-shaped transactions from TQ1/TQ2 into PQ1.
# The same suite runs on NATS JetStream with QUEUE_BACKEND=nats (queue_nats_test.sh): it starts
# its own nats-server, and kills that too in the kill -9 test (KEEP_NATS=1 spares it, to tell a
# loss in Vigil from one in nats-server).
# Usage: queue_test.sh path/to/vigil
set -uo pipefail
VIGIL="$1"
BACKEND="${QUEUE_BACKEND:-embedded}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

QUEUE_ARGS=()
NATS_PID=""
start_nats() {
  NATS_PID=$(bash "$(dirname "$0")/../scripts/nats-server.sh" "$WORK/nats" "$NATS_PORT") || { fail "nats-server did not start"; exit 1; }
  PIDS+=("$NATS_PID")
}
if [ "$BACKEND" = nats ]; then
  for _ in $(seq 50); do
    NATS_PORT=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null || break
  done
  start_nats
  QUEUE_ARGS=(--queue "nats://127.0.0.1:$NATS_PORT")
fi

"$VIGIL" simulate --customers 200 --terminals 400 --days 40 --radius 10 --quiet --out "$WORK/tx.csv" >/dev/null
START=$(sed -n 2p "$WORK/tx.csv" | cut -d, -f2 | cut -c1-10)
"$VIGIL" train --data "$WORK/tx.csv" --train-start "$(date -u -d "$START + 20 days" +%F)" --quiet \
  --param n_estimators=10 --review-rate 0.05 --out "$WORK/a.model" >/dev/null || fail "train"
mkdir -p "$WORK/data"

PORT=""
SERVER=""
start_server() {  # start_server extra-args...: sets SERVER and PORT
  : >"$WORK/serve.out"
  "$VIGIL" serve --model "$WORK/a.model" --port 0 --address 127.0.0.1 --data-dir "$WORK/data" "${QUEUE_ARGS[@]}" "$@" \
    >"$WORK/serve.out" 2>>"$WORK/serve.err" &
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
# post PATH BODY [curl args...] -> prints STATUS; the body is in $WORK/resp
post() {
  local path="$1" body="$2"; shift 2
  curl -s -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    "$@" --data-binary "$body" "$(URL "$path")"
}
resp() { jq -r "$1" "$WORK/resp"; }
expect_status() {  # expect_status "description" WANT GOT
  if [ "$3" = "$2" ]; then pass; else fail "$1: status $3, want $2: $(head -c 300 "$WORK/resp")"; fi
}
depth() { curl -s "$(URL "/api/queues/$1")" | jq -r "$2"; }

start_server || exit 1

# --- The reference contract: push 201 with an id, pull 200 with "content", 404 when empty.
s=$(post /api/queues/TQ1/push '{"content": {"customer_id": "cust_001", "amount": 12.5}, "message_type": "transaction"}')
expect_status "push" 201 "$s"
ID1=$(resp .id)
[ "$ID1" = "TQ1-1" ] && pass || fail "first id is '$ID1'"
s=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST "$(URL /api/queues/TQ1/pull)")
expect_status "plain pull without a body or Content-Type" 200 "$s"
[ "$(resp .content.customer_id)" = "cust_001" ] && [ "$(resp .message_type)" = "transaction" ] \
  && [ "$(resp .attempt)" = 1 ] && [ "$(resp .id)" = "$ID1" ] && pass || fail "pulled message: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ1/pull '')
expect_status "a taken message is gone: empty queue" 404 "$s"
[ "$(resp .error.code)" = "not_found" ] && pass || fail "empty pull body: $(cat "$WORK/resp")"

# --- Batches, leases, acks.
s=$(post /api/queues/TQ2/push '{"messages": [{"content": 1}, {"content": "two"}, {"content": [3]}, {"content": null, "message_type": "x"}]}')
expect_status "batch push" 201 "$s"
[ "$(resp '.ids | length')" = 4 ] && pass || fail "batch ids: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/pull '{"lease_seconds": 30, "max": 3}')
expect_status "leased pull" 200 "$s"
[ "$(resp '[.messages[].content | tojson] | join(",")')" = '1,"two",[3]' ] && pass || fail "lease order: $(cat "$WORK/resp")"
LEASED=$(resp '[.messages[].id]')
[ "$(resp '.messages[0].lease_expires_at' | cut -c1-2)" = "20" ] && pass || fail "lease_expires_at: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/pull '{"lease_seconds": 30, "max": 10}')
[ "$(resp '.messages | length')" = 1 ] && [ "$(resp '.messages[0].content')" = null ] && pass \
  || fail "leased messages are hidden from the next pull: $(cat "$WORK/resp")"
LAST=$(resp '.messages[0].id')
[ "$(depth TQ2 .in_flight)" = 4 ] && [ "$(depth TQ2 .depth)" = 0 ] && pass || fail "stats: $(curl -s "$(URL /api/queues/TQ2)")"
s=$(post /api/queues/TQ2/ack "{\"ids\": $LEASED}")
expect_status "ack" 200 "$s"
[ "$(resp .acked)" = 3 ] && pass || fail "acked: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/ack "{\"ids\": $LEASED}")
expect_status "a second ack of the same ids" 404 "$s"
[ "$(resp '.error.details | length')" = 3 ] && pass || fail "ack details: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/ack "{\"ids\": [\"$LAST\", \"TQ2-999\"]}")
expect_status "ack with one unknown id" 404 "$s"
[ "$(depth TQ2 .in_flight)" = 1 ] && pass || fail "a refused ack changed nothing"
# nack into the dead letters, inspect, requeue.
s=$(post /api/queues/TQ2/nack "{\"ids\": [\"$LAST\"], \"dead_letter\": true, \"reason\": \"not a transaction\"}")
expect_status "nack to dead letters" 200 "$s"
curl -s -o "$WORK/resp" "$(URL /api/queues/TQ2/dead-letters)"
[ "$(resp '.messages[0].last_error')" = "not a transaction" ] && pass || fail "dead letters: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/dead-letters/requeue '{}')
expect_status "requeue" 200 "$s"
[ "$(resp .requeued)" = 1 ] && [ "$(depth TQ2 .depth)" = 1 ] && pass || fail "requeued: $(cat "$WORK/resp")"
s=$(post /api/queues/TQ2/pull '{"max": 5}')
[ "$(resp '.messages | length')" = 1 ] && pass || fail "take the requeued one: $(cat "$WORK/resp")"
curl -s -o "$WORK/resp" "$(URL /api/queues)"
[ "$(resp '.backend')" = "$BACKEND" ] && [ "$(resp '[.queues[].name] | sort | join(",")')" = "PQ1,TQ1,TQ2" ] && pass \
  || fail "queue list: $(cat "$WORK/resp")"

# --- Long polls: a pull with wait_seconds waits for a push (on threads of its own).
post /api/queues/LONG/push '{"content": "seed"}' >/dev/null  # the queue exists now, empty after
s=$(post /api/queues/LONG/pull '{"max": 1}')
[ "$(resp '.messages[0].content')" = seed ] && pass || fail "seed: $(cat "$WORK/resp")"
long_poll() {  # long_poll BODY NAME: in the background, status in $WORK/NAME.status
  curl -s -o "$WORK/$2" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "$1" "$(URL /api/queues/LONG/pull)" >"$WORK/$2.status" &
}
long_poll '{"wait_seconds": 15}' plain_wait
W=$!
poll_start=$SECONDS
sleep 1
kill -0 "$W" 2>/dev/null && pass || fail "a plain pull with wait_seconds on an empty queue answered at once: $(cat "$WORK/plain_wait")"
post /api/queues/LONG/push '{"content": "late1"}' >/dev/null
wait "$W"
[ "$(cat "$WORK/plain_wait.status")" = 200 ] && [ "$(jq -r .content "$WORK/plain_wait")" = late1 ] && pass \
  || fail "plain long poll: $(cat "$WORK/plain_wait.status") $(cat "$WORK/plain_wait") after $((SECONDS - poll_start)) s"
long_poll '{"lease_seconds": 30, "max": 5, "wait_seconds": 15}' leased_wait
W=$!
poll_start=$SECONDS
sleep 1
kill -0 "$W" 2>/dev/null && pass || fail "a leased pull with wait_seconds answered at once: $(cat "$WORK/leased_wait")"
post /api/queues/LONG/push '{"messages": [{"content": "late2"}, {"content": "late3"}]}' >/dev/null
wait "$W"
[ "$(cat "$WORK/leased_wait.status")" = 200 ] && [ "$(jq -r '.messages[0].content' "$WORK/leased_wait")" = late2 ] && pass \
  || fail "leased long poll: $(cat "$WORK/leased_wait.status") $(cat "$WORK/leased_wait") after $((SECONDS - poll_start)) s"
s=$(post /api/queues/LONG/ack "{\"ids\": $(jq -c '[.messages[].id]' "$WORK/leased_wait")}")
expect_status "ack what the long poll leased" 200 "$s"
expect_status "wait_seconds out of range" 400 "$(post /api/queues/LONG/pull '{"wait_seconds": 21}')"
[ "$(resp '.error.details[0].field')" = wait_seconds ] && pass || fail "wait details: $(cat "$WORK/resp")"
expect_status "wait_seconds not a number" 400 "$(post /api/queues/LONG/pull '{"wait_seconds": "soon"}')"

# --- Bad input: a clear error with a documented status, nothing changed.
before=$(depth TQ1 .totals.pushed)
expect_status "bad queue name" 400 "$(post '/api/queues/bad%20name/push' '{"content": 1}')"
expect_status "queue name too long" 400 "$(post "/api/queues/$(printf 'q%.0s' $(seq 65))/push" '{"content": 1}')"
expect_status "not JSON" 400 "$(post /api/queues/TQ1/push '{"content": ')"
[ "$(resp '.error.details[0].problem' | grep -c 'line 1')" = 1 ] && pass || fail "JSON error says where: $(cat "$WORK/resp")"
expect_status "no content" 400 "$(post /api/queues/TQ1/push '{"message_type": "t"}')"
[ "$(resp '.error.details[0].field')" = content ] && pass || fail "no content details: $(cat "$WORK/resp")"
expect_status "message_type not a string" 400 "$(post /api/queues/TQ1/push '{"content": 1, "message_type": 5}')"
big=$(head -c 1100000 /dev/zero | tr '\0' 'a')
printf '{"content": "%s"}' "$big" >"$WORK/big.json"
s=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$(URL /api/queues/TQ1/push)")
expect_status "oversized message" 413 "$s"
msgs=$(for i in $(seq 1001); do printf '{"content": %d},' "$i"; done)
expect_status "batch over the limit" 400 "$(post /api/queues/TQ1/push "{\"messages\": [${msgs%,}]}")"
expect_status "empty batch" 400 "$(post /api/queues/TQ1/push '{"messages": []}')"
expect_status "lease out of range" 400 "$(post /api/queues/TQ1/pull '{"lease_seconds": 99999}')"
[ "$(resp '.error.details[0].field')" = lease_seconds ] && pass || fail "lease details: $(cat "$WORK/resp")"
expect_status "max out of range" 400 "$(post /api/queues/TQ1/pull '{"max": 0}')"
expect_status "ack without ids" 400 "$(post /api/queues/TQ1/ack '{}')"
expect_status "ack ids not strings" 400 "$(post /api/queues/TQ1/ack '{"ids": [1]}')"
expect_status "pull from a queue that does not exist" 404 "$(post /api/queues/NOPE/pull '')"
expect_status "push without a JSON Content-Type" 415 "$(curl -s -o "$WORK/resp" -w '%{http_code}' -X POST --data-binary '{"content":1}' "$(URL /api/queues/TQ1/push)")"
[ "$(depth TQ1 .totals.pushed)" = "$before" ] && [ "$(depth TQ1 .depth)" = 0 ] && pass || fail "bad input changed the queue"
curl -s -o "$WORK/resp" "$(URL /api/queues/NOPE)"
[ "$(resp .error.code)" = not_found ] && pass || fail "stats of a missing queue"

# --- kill -9 during a push/pull load: every push answered 201 is delivered after the restart,
# and no message leased before the kill is handed to anyone else while its lease holds.
pusher() {  # pusher N: pushes until killed, logging each acknowledged content
  local i=0
  while :; do
    i=$((i + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data-binary "{\"content\": {\"p\": $1, \"i\": $i}}" "$(URL /api/queues/LOAD/push)")
    [ "$code" = 201 ] && echo "$1-$i" >>"$WORK/acked.$1"
  done
}
consumer() {  # leases messages (never acks), logging what it holds
  while :; do
    curl -s -X POST -H 'Content-Type: application/json' --data-binary '{"lease_seconds": 600, "max": 5}' \
      "$(URL /api/queues/LOAD/pull)" | jq -r '.messages[]? | "\(.content.p)-\(.content.i) \(.id)"' >>"$WORK/leased" 2>/dev/null
  done
}
post /api/queues/LOAD/push '{"content": {"p": 0, "i": 0}}' >/dev/null
LOADERS=()
for p in 1 2 3; do pusher "$p" & LOADERS+=($!); done
consumer & LOADERS+=($!)
sleep 2
kill -9 "$SERVER"
if [ -n "$NATS_PID" ] && [ -z "${KEEP_NATS:-}" ]; then kill -9 "$NATS_PID"; fi
sleep 0.2
for l in "${LOADERS[@]}"; do kill "$l" 2>/dev/null; done
wait "${LOADERS[@]}" 2>/dev/null
cat "$WORK"/acked.* | sort >"$WORK/acked"
nacked=$(wc -l <"$WORK/acked")
[ "$nacked" -gt 20 ] && pass || fail "the load pushed only $nacked messages"
if [ -n "$NATS_PID" ] && [ -z "${KEEP_NATS:-}" ]; then start_nats; fi
start_server || exit 1
: >"$WORK/after"
while :; do
  s=$(post /api/queues/LOAD/pull '{"lease_seconds": 600, "max": 1000}')
  n=$(resp '.messages | length')
  [ "$s" = 200 ] && [ "$n" != 0 ] || break
  resp '.messages[] | "\(.content.p)-\(.content.i) \(.id)"' >>"$WORK/after"
done
cut -d' ' -f1 "$WORK/leased" "$WORK/after" | sort -u >"$WORK/delivered"
missing=$(comm -23 "$WORK/acked" "$WORK/delivered" | wc -l)
[ "$missing" = 0 ] && pass || fail "$missing acknowledged pushes were lost by kill -9 (of $nacked)"
twice=$(cut -d' ' -f2 "$WORK/leased" "$WORK/after" | sort | uniq -d | wc -l)
[ "$twice" = 0 ] && pass || fail "$twice messages were delivered again while their lease held"
echo "kill -9 under load ($BACKEND): $nacked acknowledged pushes, $(wc -l <"$WORK/leased") leased before the kill, $(wc -l <"$WORK/after") after"
kill "$SERVER"; wait "$SERVER" 2>/dev/null

# --- serve --process: reference-shaped transactions from TQ1 and TQ2 to PQ1, each recorded.
start_server --process --process-batch 7 || exit 1
body='{"messages": ['
for i in $(seq 1 30); do
  q=$((i % 2 + 1))
  body+=$(printf '{"content": {"customer_id": "cust_%03d", "vendor_id": %d, "amount": %d.5, "status": "submitted", "timestamp": "%s"}, "message_type": "transaction"},' \
    $((i % 5)) $((i % 7)) $((i * 13)) "$(date -u -d "$START + 30 days + $i minutes" +%Y-%m-%dT%H:%M:%S.123456)")
done
body="${body%,}]}"
expect_status "push 30 transactions to TQ1" 201 "$(post /api/queues/TQ1/push "$body")"
expect_status "push an invalid one to TQ2" 201 "$(post /api/queues/TQ2/push '{"content": {"customer_id": "cust_9", "amount": "lots"}}')"
expect_status "push one with its own id to TQ2" 201 "$(post /api/queues/TQ2/push "{\"content\": {\"transaction_id\": \"tx-own\", \"customer_id\": \"cust_1\", \"vendor_id\": \"v1\", \"amount\": 5, \"timestamp\": \"$(date -u -d "$START + 31 days" +%FT%TZ)\"}}")"
for _ in $(seq 100); do [ "$(depth PQ1 .depth)" = 32 ] && break; sleep 0.1; done
[ "$(depth PQ1 .depth)" = 32 ] && pass || fail "PQ1 holds $(depth PQ1 .depth) records, want 32"
post /api/queues/PQ1/pull '{"max": 100}' >/dev/null
cp "$WORK/resp" "$WORK/pq1"
jq -e '[.messages[].content | select(.status == "scored")] | length == 31' "$WORK/pq1" >/dev/null && pass || fail "31 scored records"
jq -e '[.messages[].content | select(.status == "scored") | (.prediction | type) == "boolean" and (.confidence >= 0.5) and (.processor_rank == 0) and (.decision | IN("approve","review","decline")) and (.model.name == "a") and (.reasons | type) == "array"] | all' "$WORK/pq1" >/dev/null \
  && pass || fail "scored records carry the reference's fields and Vigil's: $(jq -c '.messages[0].content' "$WORK/pq1")"
jq -e '[.messages[].content | select(.customer_id == "cust_001" and .amount == 13.5)][0] | .transaction_id == .message_id and .vendor_id == "1" and .transaction_status == "submitted"' "$WORK/pq1" >/dev/null \
  && pass || fail "a transaction without an id takes its message id: $(jq -c '.messages[].content | select(.amount == 13.5)' "$WORK/pq1")"
NOID=$(jq -r '[.messages[].content | select(.amount == 13.5)][0].message_id' "$WORK/pq1")
jq -e '[.messages[].content | select(.status == "error")] | length == 1 and (.[0].error | contains("amount")) and .[0].prediction == null' "$WORK/pq1" >/dev/null \
  && pass || fail "the invalid one is an error record: $(jq -c '.messages[].content | select(.status == "error")' "$WORK/pq1")"
curl -s "$(URL /metrics)" >"$WORK/metrics"
promtool check metrics <"$WORK/metrics" >/dev/null 2>&1 && pass || fail "metrics fail promtool: $(promtool check metrics <"$WORK/metrics" 2>&1 | head -3)"
grep -q '^vigil_queue_acked_total{queue="TQ1"} 30$' "$WORK/metrics" && grep -q '^vigil_queue_dead_letters{queue="TQ2"} 1$' "$WORK/metrics" \
  && grep -q '^vigil_processor_processed_total 31$' "$WORK/metrics" && grep -q '^vigil_processor_errors_total 1$' "$WORK/metrics" \
  && pass || fail "queue metrics: $(grep -E 'vigil_(queue|processor)' "$WORK/metrics" | head -20)"
curl -s -o "$WORK/resp" "$(URL /api/queues/TQ2/dead-letters)"
[ "$(resp '.messages | length')" = 1 ] && [ "$(resp '.messages[0].content.amount')" = lots ] && pass || fail "the invalid one is a dead letter: $(cat "$WORK/resp")"
[ "$(depth TQ1 .depth)" = 0 ] && [ "$(depth TQ1 .in_flight)" = 0 ] && [ "$(depth TQ1 .totals.acked)" = 30 ] && pass || fail "TQ1 drained and acknowledged"
s=$(curl -s -o "$WORK/resp" -w '%{http_code}' "$(URL /v1/transactions/tx-own)")
[ "$s" = 200 ] && [ "$(resp .transaction.customer_id)" = cust_1 ] && pass || fail "a processed transaction is recorded: $s $(cat "$WORK/resp")"
s=$(curl -s -o "$WORK/resp" -w '%{http_code}' "$(URL "/v1/transactions/$NOID")")
[ "$s" = 200 ] && [ "$(resp .transaction.amount)" = 13.5 ] && pass || fail "$NOID is recorded under its message id: $s"
# A redelivered transaction is a replay: scored once, same reply.
expect_status "push tx-own again" 201 "$(post /api/queues/TQ2/push "{\"content\": {\"transaction_id\": \"tx-own\", \"customer_id\": \"cust_1\", \"vendor_id\": \"v1\", \"amount\": 5, \"timestamp\": \"$(date -u -d "$START + 31 days" +%FT%TZ)\"}}")"
for _ in $(seq 100); do [ "$(depth PQ1 .depth)" = 1 ] && break; sleep 0.1; done
post /api/queues/PQ1/pull '' >/dev/null
first=$(jq -c '.messages[].content | select(.transaction_id == "tx-own") | .score' "$WORK/pq1")
[ "$(resp .content.score)" = "$first" ] && [ "$(resp .content.transaction_id)" = tx-own ] && pass || fail "replay gives the first score ($first): $(cat "$WORK/resp")"
kill "$SERVER"; wait "$SERVER" 2>/dev/null

# --- vigil process in its own process, against this server's queues over HTTP (the reference's
# environment variables), with --mock and --verbose.
start_server || exit 1
mkdir -p "$WORK/proc"
# A key of the processor role, as an operator would issue it.
PROC_KEY="$("$VIGIL" keys create --role processor --name queue-test --data-dir "$WORK/data" 2>/dev/null)"
QUEUE_SERVICE_URL="http://127.0.0.1:$PORT" TRANSACTION_QUEUE=TQ2 PREDICTION_QUEUE=OUT \
  "$VIGIL" process --model "$WORK/a.model" --data-dir "$WORK/proc" --mock 50 --verbose --token "$PROC_KEY" \
  >"$WORK/process.out" 2>"$WORK/process.err"
rc=$?
[ "$rc" = 0 ] && pass || fail "vigil process --mock exited $rc: $(tail -3 "$WORK/process.err")"
[ "$(grep -c '^Transaction cust_[0-9]*: Fraud=\(True\|False\), Confidence=[01]\.[0-9][0-9], Amount=\$' "$WORK/process.out")" = 50 ] \
  && pass || fail "one line per transaction: $(head -3 "$WORK/process.out")"
grep -q '^Summary: [0-9]* fraudulent transactions detected out of 50$' "$WORK/process.out" && \
  grep -q '^Average confidence: 0\.[0-9][0-9]\|^Average confidence: 1\.00' "$WORK/process.out" && \
  grep -q '^Processing time: [0-9.]* seconds$' "$WORK/process.out" && pass || fail "summary: $(tail -4 "$WORK/process.out")"
[ "$(depth OUT .depth)" = 50 ] && [ "$(depth TQ2 .depth)" = 0 ] && [ "$(depth TQ2 .in_flight)" = 0 ] && pass \
  || fail "50 records in OUT and TQ2 acknowledged: $(curl -s "$(URL /api/queues)")"
expect_error "process with a bad queue URL" "http://host:port" "$VIGIL" process --model "$WORK/a.model" \
  --data-dir "$WORK/proc" --queue-url "ftp://x"
expect_error "process with the output among the inputs" "cannot also be an input" "$VIGIL" process \
  --model "$WORK/a.model" --data-dir "$WORK/proc" --transaction-queue TQ1,PQ1 --mock 0
kill "$SERVER"; wait "$SERVER" 2>/dev/null
QUEUE_SERVICE_URL="http://127.0.0.1:$PORT" "$VIGIL" process --model "$WORK/a.model" --data-dir "$WORK/proc" \
  --mock 1 >/dev/null 2>"$WORK/process.err"
[ $? != 0 ] && grep -q "cannot be reached" "$WORK/process.err" && pass || fail "a queue service that is down: $(cat "$WORK/process.err")"

finish "queue ($BACKEND)"
