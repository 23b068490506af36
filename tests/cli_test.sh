#!/usr/bin/env bash
# End-to-end: the offline pipeline through the `vigil` binary, right inputs and wrong ones.
# Usage: cli_test.sh path/to/vigil
set -uo pipefail
VIGIL="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

SIM=(--customers 300 --terminals 600 --days 70 --radius 10 --quiet)

# --- simulate ---------------------------------------------------------------------------
"$VIGIL" simulate "${SIM[@]}" --out "$WORK/a.csv" --json >"$WORK/a.json" || fail "simulate exits 0"
"$VIGIL" simulate "${SIM[@]}" --threads 1 --out "$WORK/b.csv" >/dev/null || fail "simulate exits 0"
check "same options and seed give the same bytes, whatever the threads" cmp -s "$WORK/a.csv" "$WORK/b.csv"
check "header" test "$(head -1 "$WORK/a.csv")" = \
  "transaction_id,timestamp,customer_id,terminal_id,amount,fraud,fraud_scenario"
rows=$(($(wc -l <"$WORK/a.csv") - 1))
check "--json transactions = rows written" test "$(jq .transactions "$WORK/a.json")" -eq "$rows"
check "--json frauds = sum of scenario frauds" test "$(jq '.frauds' "$WORK/a.json")" -eq \
  "$(jq '.scenario_frauds["1"] + .scenario_frauds["2"] + .scenario_frauds["3"]' "$WORK/a.json")"
check "--json fraud_rate" jq -e '.fraud_rate > 0 and .fraud_rate < 0.5' "$WORK/a.json" >/dev/null
check "frauds counted in the file" test "$(awk -F, 'NR>1 && $6==1' "$WORK/a.csv" | wc -l)" -eq \
  "$(jq .frauds "$WORK/a.json")"
"$VIGIL" simulate "${SIM[@]}" --seed 7 --out "$WORK/c.csv" >/dev/null
check "another seed, other data" bash -c "! cmp -s '$WORK/a.csv' '$WORK/c.csv'"
check "sorted by time" bash -c "tail -n +2 '$WORK/a.csv' | cut -d, -f2 | sort -c"

expect_error "--days 0" "--days must be at least 1" "$VIGIL" simulate --days 0 --out "$WORK/x.csv"
expect_error "--customers -1" "customers" "$VIGIL" simulate --customers -1 --out "$WORK/x.csv"
expect_error "bad --start" "2018-02-30" "$VIGIL" simulate --start 2018-02-30 --out "$WORK/x.csv"
expect_error "unwritable output" "/nonexistent/dir/x.csv" \
  "$VIGIL" simulate "${SIM[@]}" --out /nonexistent/dir/x.csv
check "no output after a failed simulate" test ! -e "$WORK/x.csv"

# --- malformed CSV input: clear error naming file:line:column, no partial output -------------
printf 'transaction_id,timestamp,customer_id,amount,fraud\n0,2018-04-01T00:00:00Z,1,2.5,0\n' >"$WORK/nocol.csv"
expect_error "missing column" "missing column 'terminal_id'" \
  "$VIGIL" features --data "$WORK/nocol.csv" --out "$WORK/f.csv"
head -3 "$WORK/a.csv" >"$WORK/badamt.csv"
echo "99,2018-06-01T00:00:00Z,1,2,abc,0,0" >>"$WORK/badamt.csv"
expect_error "non-numeric amount" "badamt.csv:4:" "$VIGIL" features --data "$WORK/badamt.csv" --out "$WORK/f.csv"
expect_error "non-numeric amount names the problem" "amount: 'abc' is not a number" \
  "$VIGIL" features --data "$WORK/badamt.csv" --out "$WORK/f.csv"
head -3 "$WORK/a.csv" >"$WORK/badts.csv"
echo "99,2018-06-31T00:00:00Z,1,2,5.0,0,0" >>"$WORK/badts.csv"
expect_error "bad timestamp" "badts.csv:4:4: timestamp" \
  "$VIGIL" train --data "$WORK/badts.csv" --out "$WORK/m.model"
: >"$WORK/empty.csv"
expect_error "empty file" "empty.csv: the file is empty" \
  "$VIGIL" evaluate --data "$WORK/empty.csv"
expect_error "missing file" "cannot open" "$VIGIL" evaluate --data "$WORK/nope.csv"
check "no partial feature output" test ! -e "$WORK/f.csv"
check "no partial model output" test ! -e "$WORK/m.model"

# --- features -------------------------------------------------------------------------------
check "features --list names the book's features" bash -c \
  "'$VIGIL' features --list --set book | awk '{print \$1}' | grep -qx terminal_risk_30d"
check "features --list has 15 book features" test "$("$VIGIL" features --list --set book | wc -l)" -eq 15
"$VIGIL" features --data "$WORK/a.csv" --out "$WORK/f.csv" --set all --quiet >/dev/null ||
  fail "features exits 0"
check "feature matrix has a row per transaction" test "$(($(wc -l <"$WORK/f.csv") - 1))" -eq "$rows"
check "feature matrix header" bash -c \
  "head -1 '$WORK/f.csv' | grep -q '^transaction_id,amount,weekend,night,.*,fraud\$'"
expect_error "unknown feature set" "unknown feature set 'most'" \
  "$VIGIL" features --data "$WORK/a.csv" --out "$WORK/g.csv" --set most

# --- train and evaluate ---------------------------------------------------------------------
START=$(sed -n 2p "$WORK/a.csv" | cut -d, -f2 | cut -c1-10)
TRAIN_START=$(date -u -d "$START + 30 days" +%F)
for algo in rf gbdt logistic; do
  "$VIGIL" train --data "$WORK/a.csv" --algo "$algo" --train-start "$TRAIN_START" --quiet \
    --param n_estimators=10 --out "$WORK/$algo.model" --json >"$WORK/$algo.json" ||
    fail "train $algo exits 0"
  check "$algo model names its algorithm" jq -e ".algorithm == \"$algo\"" "$WORK/$algo.model" >/dev/null
  check "$algo model is self-describing" jq -e \
    '.format == "vigil-model" and (.features | length) > 15 and .training.rows > 0 and
     (.data_fingerprint | length) == 16 and (.xgboost.learner | type) == "object" and
     .metrics.test_auc > 0.5' "$WORK/$algo.model" >/dev/null
done
check "logistic model carries its standardisation" jq -e '.standardize.mean | length > 15' \
  "$WORK/logistic.model" >/dev/null
expect_error "unknown algorithm" "unknown algorithm 'svm'" \
  "$VIGIL" train --data "$WORK/a.csv" --algo svm --out "$WORK/svm.model"
expect_error "training window outside the data" "no transactions between" \
  "$VIGIL" train --data "$WORK/a.csv" --train-start 2030-01-01 --out "$WORK/late.model" --quiet
check "no model after failures" test ! -e "$WORK/svm.model" -a ! -e "$WORK/late.model"

"$VIGIL" evaluate --data "$WORK/a.csv" --start "$TRAIN_START" --folds 2 --algo gbdt,logistic \
  --features book,all --param n_estimators=10 --json --quiet >"$WORK/eval.json" || fail "evaluate exits 0"
check "evaluate --json has a row per model and feature set" jq -e 'length == 4' "$WORK/eval.json" >/dev/null
check "evaluate --json fields" jq -e 'all(.[]; has("algo") and has("features") and has("auc") and
  has("ap") and has("cp100") and has("auc_std") and has("ap_std") and has("cp100_std"))' \
  "$WORK/eval.json" >/dev/null
check "evaluate metrics are in range" jq -e \
  'all(.[]; .auc > 0.5 and .auc <= 1 and .ap > 0 and .ap <= 1 and .cp100 >= 0 and .cp100 <= 1)' \
  "$WORK/eval.json" >/dev/null
"$VIGIL" evaluate --data "$WORK/a.csv" --start "$TRAIN_START" --folds 1 --algo gbdt --quiet \
  --param n_estimators=5 >"$WORK/eval.txt" || fail "evaluate table exits 0"
check "evaluate prints a table" grep -q '^gbdt  *book  *0\.[0-9]* ± ' "$WORK/eval.txt"
expect_error "evaluate beyond the data" "needs data up to" \
  "$VIGIL" evaluate --data "$WORK/a.csv" --start "$TRAIN_START" --folds 9 --quiet
expect_error "unknown protocol" "unknown protocol" \
  "$VIGIL" evaluate --data "$WORK/a.csv" --protocol kaggle

# --- help -----------------------------------------------------------------------------------
for c in simulate features train evaluate; do
  check "vigil --help lists $c" bash -c "'$VIGIL' --help | grep -q '^  $c '"
  check "vigil $c --help" bash -c "'$VIGIL' $c --help | grep -q -- '--'"
done

finish
