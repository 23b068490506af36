#!/usr/bin/env bash
# End-to-end: `vigil process` over OpenMPI ranks (Debian's mpirun, really started). With
# --in/--out: the same bytes as `vigil score` whatever the number of ranks, work that follows the
# ranks' speed, the fallbacks to one process, bad input, and a worker killed mid-job. Over a queue
# service (a `vigil serve` it starts): the predictions of one process, processor_rank, a hot swap
# reaching the workers, and a worker and then the master killed mid-job with nothing lost or
# counted twice after a second run.
# Usage: mpi_test.sh path/to/vigil
set -uo pipefail
VIGIL="$1"
WORK="${KEEP_WORK:-$(mktemp -d)}"
HOG=""
QS=""
cleanup() {
  [ -n "$HOG" ] && kill "$HOG" 2>/dev/null
  [ -n "$QS" ] && kill -9 "$QS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

if ! command -v mpirun >/dev/null; then
  echo "FAIL: mpirun not found: run scripts/install-deps.sh (openmpi-bin)" >&2
  exit 1
fi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader)

"$VIGIL" simulate --customers 400 --terminals 800 --days 60 --radius 10 --quiet --out "$WORK/tx.csv" >/dev/null
"$VIGIL" train --data "$WORK/tx.csv" --algo gbdt --train-start 2018-04-20 --out "$WORK/gbdt.model" --quiet >/dev/null ||
  fail "train a model"
MODEL="$WORK/gbdt.model"
"$VIGIL" score --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/ref.csv" --explain --quiet >/dev/null
"$VIGIL" score --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/ref-plain.csv" --quiet >/dev/null
rows=$(($(wc -l <"$WORK/tx.csv") - 1))
check "vigil score wrote every row" test "$(($(wc -l <"$WORK/ref.csv") - 1))" -eq "$rows"

# rank_rows FILE RANK: the rows column of RANK's line in the per-rank table.
rank_rows() { awk -v r="$2" '$1 == r && ($3 == "master" || $3 == "worker") { print $5 }' "$1"; }

# --- the same bytes whatever N ---------------------------------------------------------------
for n in 1 2 3 4; do
  "${MPIRUN[@]}" -n "$n" "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/mpi$n.csv" \
    --explain --rank-batch 500 --quiet >"$WORK/mpi$n.out" 2>"$WORK/mpi$n.err" || fail "mpirun -n $n exits 0"
  check "mpirun -n $n: byte for byte vigil score's CSV" cmp -s "$WORK/ref.csv" "$WORK/mpi$n.csv"
  # And after sorting by transaction id, as the issue states it.
  check "mpirun -n $n: the same rows sorted by id" \
    bash -c "diff <(tail -n +2 '$WORK/ref.csv' | sort -t, -k1,1n) <(tail -n +2 '$WORK/mpi$n.csv' | sort -t, -k1,1n)"
done
check "-n 1 says it scores alone" grep -q "one MPI rank: scoring in it alone" "$WORK/mpi1.err"
check "-n 3 names the master and the workers" grep -q "3 ranks (Open MPI" "$WORK/mpi3.err"
for n in 2 3 4; do
  workers_total=0
  for ((r = 1; r < n; r++)); do
    got="$(rank_rows "$WORK/mpi$n.out" "$r")"
    workers_total=$((workers_total + ${got:-0}))
    if [ "$n" -ge 3 ]; then check "-n $n: rank $r scored some rows" test "${got:-0}" -gt 0; fi
  done
  check "-n $n: the workers' rows add up to the input's ($workers_total)" test "$workers_total" -eq "$rows"
  check "-n $n: the master's line counts every row" test "$(rank_rows "$WORK/mpi$n.out" 0)" -eq "$rows"
done
check "the summary line counts the rows" grep -q "^$rows transactions scored with .* by 2 workers" "$WORK/mpi3.out"
"${MPIRUN[@]}" -n 3 "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/plain3.csv" --quiet \
  >/dev/null 2>&1 || fail "mpirun -n 3 without --explain"
check "without --explain too" cmp -s "$WORK/ref-plain.csv" "$WORK/plain3.csv"
"${MPIRUN[@]}" -n 3 "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/t2.csv" --explain \
  --threads 2 --rank-batch 64 --quiet >/dev/null 2>&1 || fail "mpirun -n 3 --threads 2"
check "two threads a worker, small batches: the same bytes" cmp -s "$WORK/ref.csv" "$WORK/t2.csv"

# --- a slow rank gets less work ----------------------------------------------------------------
# Rank 2 shares CPU 0 at nice 19 with a busy loop at nice 0 (it gets about 1/70 of that CPU);
# rank 1 runs anywhere. Workers ask for work, so rank 2 must score far fewer rows.
taskset -c 0 bash -c 'while :; do :; done' &
HOG=$!
"${MPIRUN[@]}" --bind-to none -n 2 "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/slow.csv" \
  --explain --rank-batch 200 --quiet : -n 1 taskset -c 0 nice -n 19 "$VIGIL" process --model "$MODEL" \
  --in "$WORK/tx.csv" --out "$WORK/slow.csv" --explain --rank-batch 200 --quiet \
  >"$WORK/slow.out" 2>"$WORK/slow.err" || fail "MPMD run with a slow rank exits 0"
kill "$HOG" 2>/dev/null
wait "$HOG" 2>/dev/null
HOG=""
fast="$(rank_rows "$WORK/slow.out" 1)"
slow="$(rank_rows "$WORK/slow.out" 2)"
check "the slow rank scored fewer rows (rank 1: $fast, slow rank 2: $slow)" test "${slow:-0}" -lt "$((${fast:-0} / 3))"
check "the slow rank scored some (it asked for work)" test "${slow:-0}" -gt 0
check "with a slow rank: still the same bytes" cmp -s "$WORK/ref.csv" "$WORK/slow.csv"

# --- one process when there is no MPI ----------------------------------------------------------
"$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/alone.csv" --explain --quiet \
  >"$WORK/alone.out" 2>"$WORK/alone.err" || fail "process --in without mpirun exits 0"
check "without mpirun: says it runs as one process" grep -q "not started by an MPI launcher" "$WORK/alone.err"
check "without mpirun: vigil score's bytes" cmp -s "$WORK/ref.csv" "$WORK/alone.csv"
VIGIL_MPI_PLUGIN="$WORK/no-such-plugin.so" "${MPIRUN[@]}" -x VIGIL_MPI_PLUGIN -n 2 "$VIGIL" process \
  --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/noplugin.csv" --explain --quiet \
  >"$WORK/noplugin.out" 2>"$WORK/noplugin.err" || fail "mpirun without the MPI plugin exits 0"
check "MPI unavailable: rank 0 says it scores alone" grep -q "the MPI plugin did not load.*scoring in one process" \
  "$WORK/noplugin.err"
check "MPI unavailable: rank 1 says it ends" grep -q "(rank 1): .*rank 0 scores alone, this rank ends" "$WORK/noplugin.err"
check "MPI unavailable: rank 1 never wrote the output (one summary line)" \
  test "$(grep -c "transactions scored" "$WORK/noplugin.out")" -eq 1
check "MPI unavailable: vigil score's bytes" cmp -s "$WORK/ref.csv" "$WORK/noplugin.csv"
check "the binary links no MPI" bash -c "! ldd '$VIGIL' | grep -q libmpi"

# --- bad input: a clear error, every rank ends, nothing written ---------------------------------
# expect_mpi_error DESCRIPTION FRAGMENT ARGS...: mpirun -n 3 fails, the fragment on stderr, no output.
expect_mpi_error() {
  local what="$1" fragment="$2"
  shift 2
  rm -f "$WORK/bad.csv"
  if timeout 60 "${MPIRUN[@]}" -n 3 "$VIGIL" process --out "$WORK/bad.csv" --quiet "$@" >"$WORK/bad.out" 2>"$WORK/bad.err"; then
    fail "$what: exit 0"
  elif [ "$?" -eq 124 ]; then
    fail "$what: the ranks hung"
  elif ! grep -qF -- "$fragment" "$WORK/bad.err"; then
    fail "$what: stderr lacks '$fragment': $(grep -v '"ts"' "$WORK/bad.err" | head -5)"
  elif [ -e "$WORK/bad.csv" ]; then
    fail "$what: an output was written"
  else
    pass
  fi
}
expect_mpi_error "missing input" "$WORK/none.csv" --model "$MODEL" --in "$WORK/none.csv"
printf 'not a model' >"$WORK/bad.model"
expect_mpi_error "not a model" "bad.model" --model "$WORK/bad.model" --in "$WORK/tx.csv"
expect_mpi_error "unknown kernel" "fastest" --model "$MODEL" --in "$WORK/tx.csv" --kernel fastest
head -3 "$WORK/tx.csv" >"$WORK/badrow.csv"
echo "7,2018-04-01T00:00:00Z,1,2,lots,0,0" >>"$WORK/badrow.csv"
expect_mpi_error "malformed row" "badrow.csv:4" --model "$MODEL" --in "$WORK/badrow.csv"
check "no temporary output left behind" bash -c "! ls '$WORK' | grep -q '^bad.csv'"
expect_error "--in without --out" "--in and --out go together" \
  "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv"
expect_error "--in with --mock" "no --mock or --queue-url" \
  "$VIGIL" process --model "$MODEL" --in "$WORK/tx.csv" --out "$WORK/x.csv" --mock 10

# --- a worker killed mid-job: the job stops loudly, no output ----------------------------------
# rank_pid STDERR_FILE TEXT ARGS RANK: the pid of MPI rank RANK of the `vigil process ARGS...`
# running now, once TEXT is in its job's STDERR_FILE (30 s at most; empty if not found).
rank_pid() {
  local p
  for _ in $(seq 1 600); do
    if grep -q -- "$2" "$1" 2>/dev/null; then
      for p in $(pgrep -f -- "process $3"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$4"; then
          echo "$p"
          return
        fi
      done
    fi
    sleep 0.05
  done
}
"$VIGIL" simulate --customers 2000 --terminals 4000 --days 60 --radius 10 --quiet --out "$WORK/big.csv" >/dev/null
"${MPIRUN[@]}" -n 3 "$VIGIL" process --model "$MODEL" --in "$WORK/big.csv" --out "$WORK/killed.csv" --explain \
  --rank-batch 100 >"$WORK/killed.out" 2>"$WORK/killed.err" &
job=$!
victim="$(rank_pid "$WORK/killed.err" "process: score" "--model $MODEL --in $WORK/big.csv --out $WORK/killed.csv" 2)"
check "found rank 2 while it scored" test -n "$victim"
[ -n "$victim" ] && kill -9 "$victim"
wait "$job"
code=$?
check "a killed worker fails the job (exit $code)" test "$code" -ne 0
# The launcher's SIGTERM, or the dead rank's MPI error if that reaches rank 0 first.
check "rank 0 says what was done and that nothing was written" \
  grep -qE "(stopped by SIGTERM .*|error: .*; stopped) with [0-9]+ of [0-9]+ transactions scored; nothing was written to $WORK/killed.csv" \
  "$WORK/killed.err"
check "mpirun names the rank that died" grep -q "rank 2 .*signal 9" "$WORK/killed.err"
check "no output, not even a partial one" bash -c "! ls '$WORK' | grep -q '^killed.csv'"

# --- scoring alone under a launcher still ends on SIGTERM (its signals are not left blocked) ---
VIGIL_MPI_PLUGIN="$WORK/no-such-plugin.so" "${MPIRUN[@]}" -x VIGIL_MPI_PLUGIN -n 1 "$VIGIL" process \
  --model "$MODEL" --in "$WORK/big.csv" --out "$WORK/term.csv" --explain >/dev/null 2>"$WORK/term.err" &
job=$!
alone="$(rank_pid "$WORK/term.err" "scoring in one process" "--model $MODEL --in $WORK/big.csv --out $WORK/term.csv" 0)"
check "found the rank scoring alone" test -n "$alone"
[ -n "$alone" ] && kill -TERM "$alone"
ended=""
for _ in $(seq 1 400); do
  if ! kill -0 "$alone" 2>/dev/null; then ended=1; break; fi
  sleep 0.05
done
check "SIGTERM ends the rank scoring alone" test -n "$ended"
wait "$job"
check "and it left no output" bash -c "! ls '$WORK' | grep -q '^term.csv'"
check "and it said how far it got" grep -qE \
  "vigil process: stopped by SIGTERM with [0-9]+ of [0-9]+ transactions scored; nothing was written to $WORK/term.csv" \
  "$WORK/term.err"

# --- queue sources over ranks: a queue service (vigil serve) that every run pulls from ----------
mkdir -p "$WORK/qs" "$WORK/pa" "$WORK/pb" "$WORK/pc" "$WORK/pd"
"$VIGIL" serve --model "$MODEL" --port 0 --address 127.0.0.1 --data-dir "$WORK/qs" \
  >"$WORK/qs.out" 2>"$WORK/qs.err" &
QS=$!
QPORT=""
for _ in $(seq 100); do
  QPORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$WORK/qs.out")
  [ -n "$QPORT" ] && break
  sleep 0.1
done
QURL="http://127.0.0.1:$QPORT"
check "the queue service started" test -n "$QPORT"
use_admin_key "$WORK/qs"
# pull_all QUEUE FILE: takes every message of QUEUE, one JSON content a line.
pull_all() {
  : >"$2"
  local n
  while :; do
    curl -s -X POST -H 'Content-Type: application/json' --data '{"max": 1000}' \
      "$QURL/api/queues/$1/pull" >"$WORK/pull.json"
    n=$(jq '.messages | length' "$WORK/pull.json" 2>/dev/null)
    [ "${n:-0}" -gt 0 ] 2>/dev/null || break
    jq -c '.messages[].content' "$WORK/pull.json" >>"$2"
  done
}
depth() { curl -s "$QURL/api/queues/$1" | jq -r '.depth // 0'; }
# What a record says of its transaction, without where and when it was processed.
verdicts() { jq -c '{id: (.transaction_id | sub("^IN[A-Z]-"; "")), score, decision, anomaly_score, reasons}' "$1" | sort; }
QARGS=(--model "$MODEL" --queue-url "$QURL")

# The same predictions as one process: one batch of 400, so the order of the features is the
# queue's in both.
"$VIGIL" process "${QARGS[@]}" --transaction-queue INA --prediction-queue OUTA --data-dir "$WORK/pa" \
  --mock 400 --batch 1000 >"$WORK/pa.out" 2>"$WORK/pa.err" || fail "one process over the queue service exits 0"
"${MPIRUN[@]}" -n 3 "$VIGIL" process "${QARGS[@]}" --transaction-queue INB --prediction-queue OUTB \
  --data-dir "$WORK/pb" --mock 400 --batch 1000 >"$WORK/pb.out" 2>"$WORK/pb.err" ||
  fail "mpirun -n 3 over the queue service exits 0: $(tail -3 "$WORK/pb.err")"
pull_all OUTA "$WORK/outa.jsonl"
pull_all OUTB "$WORK/outb.jsonl"
check "one process: 400 records" test "$(wc -l <"$WORK/outa.jsonl")" -eq 400
check "mpirun -n 3 over a queue: 400 records" test "$(wc -l <"$WORK/outb.jsonl")" -eq 400
check "mpirun -n 3 over a queue: the predictions of one process, reasons and all" \
  diff <(verdicts "$WORK/outa.jsonl") <(verdicts "$WORK/outb.jsonl")
check "one process: processor_rank 0" test "$(jq -r .processor_rank "$WORK/outa.jsonl" | sort -u)" = 0
check "mpirun -n 3: processor_rank names a worker" \
  bash -c "jq -r .processor_rank '$WORK/outb.jsonl' | sort -u | grep -qxE '1|2' && ! jq -r .processor_rank '$WORK/outb.jsonl' | grep -qvxE '1|2'"
check "mpirun -n 3: the summary and the rank table" \
  bash -c "grep -q 'detected out of 400$' '$WORK/pb.out' && grep -qE '^0 +[^ ]+ +master +- +400 ' '$WORK/pb.out'"
check "mpirun -n 3 says who runs the processor" grep -q "rank 0 on .* runs the processor, 2 score" "$WORK/pb.err"

# Many batches: both workers score, every message once.
"${MPIRUN[@]}" -n 3 "$VIGIL" process "${QARGS[@]}" --transaction-queue INC --prediction-queue OUTC \
  --data-dir "$WORK/pc" --mock 3000 --batch 50 >"$WORK/pc.out" 2>"$WORK/pc.err" ||
  fail "mpirun -n 3 with 60 batches exits 0"
pull_all OUTC "$WORK/outc.jsonl"
check "60 batches: 3000 records, each transaction once" \
  test "$(jq -r .transaction_id "$WORK/outc.jsonl" | sort -u | wc -l)" -eq 3000
for r in 1 2; do
  check "60 batches: rank $r scored some" test "$(jq -r .processor_rank "$WORK/outc.jsonl" | grep -cx "$r")" -gt 0
done
check "60 batches: the workers' rows in the table add up to 3000" \
  test "$(($(rank_rows "$WORK/pc.out" 1) + $(rank_rows "$WORK/pc.out" 2)))" -eq 3000
check "60 batches: the input queue is drained" test "$(depth INC)" = 0

# A hot swap (SIGHUP to rank 0 after the model file changed) reaches the workers.
"$VIGIL" train --data "$WORK/tx.csv" --algo gbdt --train-start 2018-04-25 --param n_estimators=10 \
  --out "$WORK/other.model" --quiet >/dev/null || fail "train another model"
cp "$MODEL" "$WORK/swap.model"
push_mock() {  # push_mock QUEUE N FIRST: N transactions of customer c1 with ids FIRST..
  local items="" i
  for ((i = $3; i < $3 + $2; i++)); do
    items+="{\"content\": {\"transaction_id\": \"sw$i\", \"customer_id\": \"c1\", \"vendor_id\": \"v$((i % 7))\", \"amount\": $((i % 90 + 5)), \"timestamp\": \"2018-05-01T10:$(printf %02d $((i % 60))):00\"}},"
  done
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data "{\"messages\": [${items%,}]}" "$QURL/api/queues/$1/push"
}
"${MPIRUN[@]}" -n 3 "$VIGIL" process --model "$WORK/swap.model" --queue-url "$QURL" --transaction-queue IND \
  --prediction-queue OUTD --data-dir "$WORK/pd" >"$WORK/pd.out" 2>"$WORK/pd.err" &
job=$!
push_mock IND 40 0
for _ in $(seq 300); do [ "$(depth OUTD)" = 40 ] && break; sleep 0.1; done
master="$(rank_pid "$WORK/pd.err" "runs the processor" "--model $WORK/swap.model" 0)"
check "found rank 0 of the processor" test -n "$master"
cp "$WORK/other.model" "$WORK/swap.model"
[ -n "$master" ] && kill -HUP "$master"
for _ in $(seq 300); do grep -q '"msg":"model reloaded"' "$WORK/pd.err" && break; sleep 0.1; done
push_mock IND 40 40
for _ in $(seq 300); do [ "$(depth OUTD)" = 80 ] && break; sleep 0.1; done
pull_all OUTD "$WORK/outd.jsonl"
before=$(jq -r 'select(.transaction_id | ltrimstr("sw") | tonumber < 40) | .model.version' "$WORK/outd.jsonl" | sort -u)
after=$(jq -r 'select(.transaction_id | ltrimstr("sw") | tonumber >= 40) | .model.version' "$WORK/outd.jsonl" | sort -u)
check "hot swap: 80 records" test "$(wc -l <"$WORK/outd.jsonl")" -eq 80
check "hot swap: one model before ($before) and another after ($after)" \
  bash -c "[ \$(echo '$before' | wc -l) = 1 ] && [ \$(echo '$after' | wc -l) = 1 ] && [ -n '$before' ] && [ '$before' != '$after' ]"
check "hot swap: the new model was scored by the workers" \
  bash -c "jq -r 'select(.transaction_id | ltrimstr(\"sw\") | tonumber >= 40) | .processor_rank' '$WORK/outd.jsonl' | grep -qxE '1|2'"
[ -n "$master" ] && kill -TERM "$master"
wait "$job"
check "SIGTERM to rank 0 stops the job cleanly (exit $?)" test $? -eq 0
check "SIGTERM: rank 0 says what was done" \
  grep -q "stopping on SIGTERM with 80 transactions processed and acknowledged" "$WORK/pd.err"

# A worker that cannot load the model (VIGIL_FAULT_REFUSE_MODELS stands for a host that cannot
# run it) takes no batch: the other worker scores them all. When no worker can, the job stops
# loudly, having acknowledged nothing.
QG=("${QARGS[@]}" --transaction-queue ING --prediction-queue OUTG --data-dir "$WORK/pg" --mock 1000 --batch 50)
mkdir -p "$WORK/pg" "$WORK/ph"
"${MPIRUN[@]}" -n 2 "$VIGIL" process "${QG[@]}" : -n 1 env VIGIL_FAULT_REFUSE_MODELS=1 "$VIGIL" process "${QG[@]}" \
  >"$WORK/pg.out" 2>"$WORK/pg.err" || fail "a worker that refuses the model: the job still exits 0: $(tail -3 "$WORK/pg.err")"
pull_all OUTG "$WORK/outg.jsonl"
check "a refusing worker: 1000 records, each transaction once" \
  test "$(jq -r .transaction_id "$WORK/outg.jsonl" | sort -u | wc -l)" -eq 1000
check "a refusing worker: rank 1 scored every one" test "$(jq -r .processor_rank "$WORK/outg.jsonl" | sort -u)" = 1
check "a refusing worker: rank 2 scored no row in the table" test "$(rank_rows "$WORK/pg.out" 2)" = 0
check "a refusing worker: the master logged it, with its reason" \
  bash -c "grep 'cannot load the model' '$WORK/pg.err' | grep -q 'VIGIL_FAULT_REFUSE_MODELS'"
QH=("${QARGS[@]}" --transaction-queue INH --prediction-queue OUTH --data-dir "$WORK/ph" --mock 300 --batch 50)
"${MPIRUN[@]}" -n 1 "$VIGIL" process "${QH[@]}" : -n 2 env VIGIL_FAULT_REFUSE_MODELS=1 "$VIGIL" process "${QH[@]}" \
  >"$WORK/ph.out" 2>"$WORK/ph.err"
code=$?
check "no worker can load the model: the job fails (exit $code)" test "$code" -ne 0
check "no worker can load the model: it says so, naming both ranks" bash -c \
  "grep 'no worker rank could load model version' '$WORK/ph.err' | grep 'rank 1' | grep -q 'rank 2'"
check "no worker can load the model: nothing recorded on the prediction queue" test "$(depth OUTH)" = 0
hstats="$(curl -s "$QURL/api/queues/INH" | jq -r '"\(.totals.acked) \(.depth + .in_flight)"')"
check "no worker can load the model: nothing acknowledged, all 300 still queued or leased ($hstats)" \
  test "$hstats" = "0 300"

# A rank killed mid-job (a worker, then the master): nothing unacknowledged is lost; a second run
# finishes the rest (redelivered when the leases end), and no transaction is counted twice.
kill_and_rerun() {  # kill_and_rerun RANK NAME
  local in="IN$2" out="OUT$2" dir="$WORK/p$2" code left victim job
  mkdir -p "$dir"
  "${MPIRUN[@]}" -n 3 "$VIGIL" process "${QARGS[@]}" --transaction-queue "$in" --prediction-queue "$out" \
    --data-dir "$dir" --mock 20000 --batch 20 --lease-seconds 2 >"$dir.out" 2>"$dir.err" &
  job=$!
  for _ in $(seq 600); do [ "$(depth "$out")" -gt 200 ] 2>/dev/null && break; sleep 0.05; done
  victim="$(rank_pid "$dir.err" "runs the processor" "--model $MODEL --queue-url $QURL --transaction-queue $in" "$1")"
  check "kill rank $1: found it" test -n "$victim"
  [ -n "$victim" ] && kill -9 "$victim"
  wait "$job"
  code=$?
  check "kill rank $1: the job fails (exit $code)" test "$code" -ne 0
  # Not acknowledged: still queued, or leased by the dead job until its leases end.
  left=$(curl -s "$QURL/api/queues/$in" | jq -r '20000 - .totals.acked')
  check "kill rank $1: the job stopped with transactions unacknowledged ($left)" test "${left:-0}" -gt 0
  sleep 3  # the leases of the batches in hand run out
  "$VIGIL" process "${QARGS[@]}" --transaction-queue "$in" --prediction-queue "$out" --data-dir "$dir" \
    --mock 0 --batch 200 >"$dir.2.out" 2>"$dir.2.err" || fail "kill rank $1: the second run exits 0"
  pull_all "$out" "$dir.jsonl"
  check "kill rank $1: after the rerun every transaction has a record" \
    test "$(jq -r .transaction_id "$dir.jsonl" | sort -u | wc -l)" -eq 20000
  check "kill rank $1: the input queue is drained" test "$(depth "$in")" = 0
  check "kill rank $1: the store counted each transaction once" test "$(sqlite3 "$dir/vigil.db" \
    "SELECT count(*) = 20000 AND count(DISTINCT transaction_id) = 20000 FROM transactions")" = 1
}
kill_and_rerun 2 E
kill_and_rerun 0 F
kill "$QS"
wait "$QS" 2>/dev/null

finish
