# Sourced by bench/mpi/run.sh and queue.sh (from the repository root): the defaults (VIGIL,
# DATA, MODEL), the results folder, a work folder removed at exit, the mpirun command, the model
# (trained when missing) and the line naming the machine.
VIGIL="${VIGIL:-./build/vigil}"
DATA="${DATA:-data/transactions.csv}"
MODEL="${MODEL:-models/gbdt-200x6.model}"
OUT=bench/mpi/results
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -f "$DATA" ] || { echo "run scripts/setup.sh first (needs $DATA)"; exit 1; }
if [ ! -f "$MODEL" ]; then
  echo "# training $MODEL (gbdt, 200 trees, depth 6)"
  "$VIGIL" train --data "$DATA" --algo gbdt --param n_estimators=200 --param max_depth=6 --out "$MODEL" --quiet >/dev/null
fi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader)
# machine_line WHAT: "# CPU (AVX-512 or not), N CPUs; load before: ...; WHAT; the MPI version"
machine_line() {
  local cpu avx512
  cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  avx512=$(grep -q avx512f /proc/cpuinfo && echo "AVX-512" || echo "no AVX-512")
  echo "# $cpu ($avx512), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg); $1; $(mpirun --version | head -1)"
}
