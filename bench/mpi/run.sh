#!/usr/bin/env bash
# Throughput of `vigil process --in/--out` over OpenMPI ranks (src/dist/score_job.h), beside
# single-process `vigil score` in the same run: score --threads 1 and 2; mpirun -n 1 (rank 0
# alone, one thread), -n 2 (a master and one worker), -n 3 (a master and two workers). Each
# case scores the same file with --explain --top-reasons 3, and its output must equal score
# --threads 1's byte for byte. Wall time from start to the committed file: reading, features
# (rank 0, in time order), the model, writing.
# Usage: bench/mpi/run.sh [repeats] [rows]   (from the repository root, after setup; rows: the
#        first ROWS transactions of $DATA, default all of them)
# MODEL (default models/gbdt-200x6.model: 200 trees of depth 6, trained here when missing),
# DATA (default data/transactions.csv, the handbook's 1.75 M). Prints one CSV line per run,
# then the medians and the ratios the goals name.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS="${1:-3}"
ROWS="${2:-all}"
source bench/mpi/lib.sh
input="$DATA"
if [ "$ROWS" != all ]; then
  input="$WORK/in.csv"
  head -n "$((ROWS + 1))" "$DATA" >"$input"
fi
rows=$(($(wc -l <"$input") - 1))
machine_line "$rows transactions"
COMMON=(--model "$MODEL" --in "$input" --explain --top-reasons 3 --quiet)
run_case() {
  case "$1" in
    score-t1) "$VIGIL" score "${COMMON[@]}" --threads 1 --out "$2" ;;
    score-t2) "$VIGIL" score "${COMMON[@]}" --threads 2 --out "$2" ;;
    mpi-n1) "${MPIRUN[@]}" -n 1 "$VIGIL" process "${COMMON[@]}" --threads 1 --out "$2" ;;
    mpi-n2) "${MPIRUN[@]}" -n 2 "$VIGIL" process "${COMMON[@]}" --out "$2" ;;
    mpi-n3) "${MPIRUN[@]}" -n 3 "$VIGIL" process "${COMMON[@]}" --out "$2" ;;
  esac
}
CASES=(score-t1 score-t2 mpi-n1 mpi-n2 mpi-n3)
csv="$OUT/mpi.csv"
echo "case,run,transactions,seconds,transactions_per_s" | tee "$csv"
for ((run = 1; run <= REPEATS; run++)); do
  for c in "${CASES[@]}"; do
    start=$(date +%s.%N)
    run_case "$c" "$WORK/$c.csv" >"$WORK/$c.out" 2>"$WORK/$c.err" || { echo "$c failed:"; tail "$WORK/$c.err"; exit 1; }
    end=$(date +%s.%N)
    if [ "$c" != score-t1 ] && ! cmp -s "$WORK/score-t1.csv" "$WORK/$c.csv"; then
      echo "$c: output differs from score --threads 1's"
      exit 1
    fi
    awk -v c="$c" -v r="$run" -v n="$rows" -v s="$start" -v e="$end" \
      'BEGIN { printf "%s,%d,%d,%.2f,%.0f\n", c, r, n, e - s, n / (e - s) }' | tee -a "$csv"
    [ "$c" = mpi-n3 ] && [ "$run" -eq "$REPEATS" ] && grep -E "^(rank|[0-9]+ +[a-z])" "$WORK/$c.out" | sed 's/^/# /'
  done
done
echo
echo "# medians of $REPEATS (transactions per second)"
python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = {}
for c in ["score-t1", "score-t2", "mpi-n1", "mpi-n2", "mpi-n3"]:
    med[c] = statistics.median(float(r["transactions_per_s"]) for r in rows if r["case"] == c)
    print(f"{c:9s} {med[c]:10.0f}")
print(f"2 workers / 1 worker (mpi-n3 / mpi-n2): {med['mpi-n3'] / med['mpi-n2']:.2f}  (goal >= 1.6)")
print(f"mpi-n3 / score --threads 2:             {med['mpi-n3'] / med['score-t2']:.2f}  (goal >= 0.85)")
print(f"mpi-n2 / score --threads 1:             {med['mpi-n2'] / med['score-t1']:.2f}")
PY
