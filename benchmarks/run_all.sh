#!/usr/bin/env bash
# The whole check on one machine, one command: the test suite on the JAX backend present,
# then every benchmark at sizes fit for that backend. Each step's output goes to $OUT
# (default bench-out/) and to the terminal; a failing step is reported and the rest still
# run; the exit status is 1 if any step failed.
#
#   benchmarks/run_all.sh                         # or: make bench-all
#   PYTHON=python OUT=/tmp/results benchmarks/run_all.sh
#   SKIP_TESTS=1 benchmarks/run_all.sh            # benchmarks only
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
# Several processes share one accelerator (pytest -n 2, one subprocess per measurement):
# allocate on demand instead of each grabbing 75% of the device memory.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

read -r backend devices < <("$PYTHON" -c 'import jax; print(jax.default_backend(), jax.device_count())')
echo "backend: $backend, $devices device(s); results in $OUT/"
failed=()

step() {  # step NAME COMMAND...: run, tee to $OUT/NAME.txt, remember a failure
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

# pytest-xdist is in the dev extras; a machine without it runs the tests in one process.
if "$PYTHON" -c 'import xdist' 2>/dev/null; then parallel=(-n 2 --dist loadfile); else parallel=(); fi

if [ -z "${SKIP_TESTS:-}" ]; then
    # As in the Makefile: on CPU, LLVM -O0 compiles the suite's small programs ~4x faster.
    unit_env=()
    [ "$backend" = cpu ] && unit_env=(XLA_FLAGS=--xla_backend_optimization_level=0)
    step tests env "${unit_env[@]}" "$PYTHON" -m pytest -q "${parallel[@]}" -m "not sharded"
    # The sharding tests need 8 devices: the accelerators if there are 8, else 8 simulated
    # CPU devices (bit-exact comparisons: XLA's default optimization level).
    sharded_env=()
    [ "$devices" -ge 8 ] || sharded_env=(JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=8)
    step tests-sharded env "${sharded_env[@]}" "$PYTHON" -m pytest -q "${parallel[@]}" -m sharded tests
fi

if [ "$backend" = cpu ]; then
    # The sizes of the tables in benchmarks/README.md (a 2-core VM).
    schemes=(--size 4096)
    orthogonal=(--sizes 128,256,512,1024,2048,4096)
    large=(--layers 6 --width 4096)
else
    # An accelerator: arrays large enough (1 GiB in float32) to measure memory bandwidth,
    # QR up to 16384, and a 4.8B-parameter tree (19 GB in float32).
    schemes=(--size 16384)
    orthogonal=(--sizes 1024,2048,4096,8192,16384)
    large=(--layers 6 --width 8192)
fi
step bench_schemes "$PYTHON" benchmarks/bench_schemes.py "${schemes[@]}"
step bench_eager_construction "$PYTHON" benchmarks/bench_eager_construction.py
step bench_orthogonal "$PYTHON" benchmarks/bench_orthogonal.py "${orthogonal[@]}"
step bench_large_init "$PYTHON" benchmarks/bench_large_init.py "${large[@]}"
step bench_transformer_init "$PYTHON" benchmarks/bench_transformer_init.py
# Needs 8 devices: the accelerators if there are 8, else 8 simulated CPU devices.
step bench_sharded_init "$PYTHON" benchmarks/bench_sharded_init.py
step bench_pretrained_load "$PYTHON" benchmarks/bench_pretrained_load.py
step bench_hf_load "$PYTHON" benchmarks/bench_hf_load.py

if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all steps passed"
