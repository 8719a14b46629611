#!/usr/bin/env bash
# GPU check, run on the lent GPU machine through the device tool:
#   bash bench/prepare_gpu_payload.sh          # here, once: copies what the check reads from ../shared
#   run(command="bash bench/gpu_check.sh", carry=["gpu_payload"], timeout_s=420)
# Builds the extension with nvcc, runs every test on the GPU (equivalence of the CUDA
# and Triton ops vs their references), the GPU benchmarks of the post-processing ops and
# the fused losses, and a short thumos14-preset training run (fused vs reference losses).
# Prints a short table to stdout; full logs go to $OUT (default ./gpu_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export HIMNET_FAST_SHARED_DATA=$PWD/gpu_payload/data
export MAX_JOBS=${MAX_JOBS:-16}
status=0
step() {  # step NAME CMD... : runs CMD with its log in $OUT/NAME.log, records pass/fail
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then r=ok; else r=FAIL; status=1; fi
  printf '%-28s %-5s %4ds\n' "$name" "$r" $((SECONDS - t0)) | tee -a "$OUT/summary.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/card.txt"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}

step build        $PY -m pip install --no-deps --no-build-isolation -v -e .
step tests_gpu    $PY -m pytest tests -q -x -p no:cacheprovider --junitxml="$OUT/tests.xml"
step bench_postprocess  $PY bench/gpu_postprocess_report.py --out "$OUT"
step bench_losses       $PY bench/gpu_losses_report.py --out "$OUT"
step train_speed        $PY bench/gpu_train_speed.py --out "$OUT"

echo "---- tests"; tail -n 3 "$OUT/tests_gpu.log"
for f in "$OUT"/*_table.txt; do [ -f "$f" ] && { echo "---- $(basename "$f")"; cat "$f"; }; done
exit $status
