#!/usr/bin/env bash
# Train with FSDP: one rank per GPU when there are GPUs, else 2 CPU ranks (gloo).
# Extra arguments go to scripts/train_pytorch_fsdp.py, e.g.  ./scripts/run_fsdp.sh --epochs 5
# Uses .venv/bin/python of this repository (set PYTHON=... to use another interpreter).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$root/.venv/bin/python}"
gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
nproc=$(( gpus > 0 ? gpus : 2 ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one thread per rank (and no torchrun warning about it)
echo "run_fsdp.sh: $gpus GPU(s) found, starting $nproc rank(s)"
exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$nproc" "$root/scripts/train_pytorch_fsdp.py" "$@"
