#!/usr/bin/env bash
# Throughput of the streaming processor over OpenMPI ranks (src/dist/rank_predictor.h), beside
# the processor in one process in the same run: `vigil process --mock N` on the embedded queue
# with --threads 1 and 2 (one process), and under mpirun -n 2 (a master and one worker) and -n 3
# (a master and two workers). Each case pushes the same N simulated transactions to TQ1 first,
# then processes them (pull, features, the model with three reasons, the record, PQ1, the ack);
# the figure is the processor's own "Processing time", which starts after the pushes.
# Usage: bench/mpi/queue.sh [repeats] [messages]   (from the repository root, after setup)
# MODEL (default models/gbdt-200x6.model: 200 trees of depth 6, trained here when missing).
# Prints one CSV line per run, then the medians and their ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS="${1:-3}"
MESSAGES="${2:-20000}"
source bench/mpi/lib.sh
machine_line "$MESSAGES messages"
run_case() {  # run_case CASE DATA_DIR
  local common=(--model "$MODEL" --data-dir "$2" --mock "$MESSAGES" --reasons 3 --batch 100)
  case "$1" in
    process-t1) "$VIGIL" process "${common[@]}" --threads 1 ;;
    process-t2) "$VIGIL" process "${common[@]}" --threads 2 ;;
    mpi-n2) "${MPIRUN[@]}" -n 2 "$VIGIL" process "${common[@]}" ;;
    mpi-n3) "${MPIRUN[@]}" -n 3 "$VIGIL" process "${common[@]}" ;;
  esac
}
CASES=(process-t1 process-t2 mpi-n2 mpi-n3)
csv="$OUT/queue.csv"
echo "case,run,messages,seconds,messages_per_s" | tee "$csv"
for ((run = 1; run <= REPEATS; run++)); do
  for c in "${CASES[@]}"; do
    dir="$WORK/$c-$run"
    mkdir -p "$dir"
    run_case "$c" "$dir" >"$WORK/$c.out" 2>"$WORK/$c.err" || { echo "$c failed:"; tail "$WORK/$c.err"; exit 1; }
    grep -q "detected out of $MESSAGES$" "$WORK/$c.out" || { echo "$c did not process $MESSAGES:"; cat "$WORK/$c.out"; exit 1; }
    seconds=$(sed -n 's/^Processing time: \([0-9.]*\) seconds$/\1/p' "$WORK/$c.out")
    echo "$c,$run,$MESSAGES,$seconds,$(awk -v n="$MESSAGES" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')" | tee -a "$csv"
    rm -rf "$dir"
  done
done
echo
echo "# medians (messages/s) and ratios; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -A med
for c in "${CASES[@]}"; do
  med[$c]=$(awk -F, -v c="$c" 'NR > 1 && $1 == c { print $5 }' "$csv" | median)
  printf '%-11s %8d\n' "$c" "${med[$c]}"
done
awk -v n3="${med[mpi-n3]}" -v n2="${med[mpi-n2]}" -v t2="${med[process-t2]}" 'BEGIN {
  printf "2 workers / 1 worker (mpi-n3 / mpi-n2): %.2f\n", n3 / n2
  printf "2 workers / one process, 2 threads (mpi-n3 / process-t2): %.2f\n", n3 / t2
}'
