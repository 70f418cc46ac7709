#!/usr/bin/env bash
# Issue 12's GPU figures in one command on a borrowed GPU machine (written for one H200).
#
#   bash benchmarks/device_check.sh            # about 8 minutes; give the run 600 s
#
# The machine's python3 has torch, transformers, triton and llvmlite but not alti: it runs
# from this working tree (PYTHONPATH), with random-weight models built from configs (no
# download, no model package). Each step has its own time limit, writes what it prints to
# $OUT/<step>.txt (or /tmp/alti-device-check) and the next step runs whatever happened.
#
#   gpu         BERT-base: ALTI + rollout against the forward pass, 1 x 512 tokens and a batch
#               of 32 x 128 (one launch per layer, row by row, torch's chunks), extra memory,
#               the batch's largest score difference between one launch and row by row, and the
#               L1 step alone against float64
#   blocks      the kernel's block shapes compared (the L1 step alone)
#   llama       Llama-3-8B geometry (random bf16), 4096 tokens: ALTI's seconds and extra memory
#   throughput  alti attribute, BERT-base geometry, 256 texts of 128 tokens, samples/s on 1 GPU
set -u
out=${OUT:-/tmp/alti-device-check}
mkdir -p "$out"
cd "$(dirname "$0")"
export PYTHONPATH="$PWD/..${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*" | tee "$out/$name.txt"
    local start=$SECONDS
    timeout --kill-after 10 "$limit" "$python" "$@" 2>&1 | tee -a "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$out/$name.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$python" -c "import torch, transformers, triton; print('torch', torch.__version__, '| transformers', transformers.__version__, '| triton', triton.__version__)"
  date -u; } 2>&1 | tee "$out/machine.txt"
step gpu 150 bench_gpu.py --device cuda --repeats 5
step blocks 60 bench_gpu.py --device cuda --skip-api --repeats 5 --blocks 16,16,32,4 32,16,32,4 32,32,32,8 16,16,64,8
step llama 150 bench_decoder.py --geometry llama3-8b --device cuda --lengths 4096 --methods alti --repeats 2
step throughput 150 bench_throughput.py --device cuda --texts long --tokens 128 --limit 256 --repeats 1 \
    --families alti,rollout,norm_rollout,globenc
