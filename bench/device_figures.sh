#!/usr/bin/env bash
# The GPU and 16-core figures of issue 15 in one pass, on a machine with a GPU (docs/benchmarks.md).
# Needs mlexp installed (on a lent GPU machine: from .whl, see ../shared/tools/gpu-wheels.sh) and a
# writable $OUT for the results. About 5 minutes on one H100/H200 with 16 cores.
set -uo pipefail
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
shape=(--rows 300000 --features 64 --hidden 512 --batch-size 1024 --epochs 8)
{ nvidia-smi -L; nproc; python -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__)"; } > "$OUT/machine.txt" 2>&1
run() { local name=$1; shift; echo "== $name: $*"; timeout "${LIMIT:-150}" "$@" > "$OUT/$name.txt" 2>&1; echo "rc=$?"; tail -4 "$OUT/$name.txt"; }
run gpu_fp32 python bench/bench_torch_epoch.py --device cuda "${shape[@]}" --rounds 3
run gpu_bf16 python bench/bench_torch_epoch.py --device cuda --precision bf16 "${shape[@]}" --rounds 3
run cpu_all_cores python bench/bench_torch_epoch.py --device cpu "${shape[@]}" --rounds 2
run cpu_threads python bench/bench_torch_threads.py --rows 20000 --epochs 2
run ddp_cpu python bench/bench_torch_ddp.py --rows 200000 --hidden 512 --batch-size 1024 --epochs 3 --processes 2 --rounds 1
# A whole small run on the GPU: where its fixed cost goes (timings in metrics.json; imports below).
run mlp_run_cuda bash -c "cd \"$OUT\" && TIMEFORMAT=\"process wall %R s\" && time mlexp model=mlp instance=ml.g5.xlarge data=synthetic \
  data.loader.n_samples=20000 splitter.n_splits=2 model.max_epochs=5 hydra.run.dir=mlp_run && cp mlp_run/metrics.json mlp_run_metrics.json"
python -X importtime -c "import mlexp.neural._net" 2> "$OUT/importtime.txt"
sort -t'|' -k2 -n -r "$OUT/importtime.txt" | head -15 > "$OUT/importtime_top.txt"
rm -rf "$OUT/mlp_run"
