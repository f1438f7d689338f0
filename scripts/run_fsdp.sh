#!/usr/bin/env bash
# Train with FSDP: one rank per GPU when there are GPUs, else 2 CPU ranks (gloo).
# Extra arguments go to scripts/train_pytorch_fsdp.py, e.g.  ./scripts/run_fsdp.sh --epochs 5
# Uses .venv/bin/python of this repository (set PYTHON=... to use another interpreter).
#
# Several machines: set NNODES and RDZV_ENDPOINT (host:port of any one of them, reachable from all) and
# run this same command on every machine; torchrun's c10d rendezvous gathers them and numbers the ranks:
#     NNODES=2 RDZV_ENDPOINT=node0.example.org:29500 ./scripts/run_fsdp.sh --epochs 5
# which runs, on each machine:
#     torchrun --nnodes=2 --nproc_per_node=G --rdzv-id=fsdp --rdzv-backend=c10d \
#              --rdzv-endpoint=node0.example.org:29500 scripts/train_pytorch_fsdp.py --epochs 5
# On a SLURM cluster: sbatch scripts/fsdp.sbatch (srun starts this on each node).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$root/.venv/bin/python}"
gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
nproc="${NPROC_PER_NODE:-$(( gpus > 0 ? gpus : 2 ))}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one thread per rank (and no torchrun warning about it)
if [[ -n "${RDZV_ENDPOINT:-}" ]]; then
  echo "run_fsdp.sh: $gpus GPU(s) found, starting $nproc rank(s) here, one of ${NNODES:?set NNODES} machines"
  rendezvous=(--nnodes="$NNODES" --rdzv-id="${RDZV_ID:-fsdp}" --rdzv-backend=c10d --rdzv-endpoint="$RDZV_ENDPOINT")
else
  echo "run_fsdp.sh: $gpus GPU(s) found, starting $nproc rank(s)"
  rendezvous=(--standalone)
fi
exec "$PYTHON" -m torch.distributed.run "${rendezvous[@]}" --nproc_per_node="$nproc" \
  "$root/scripts/train_pytorch_fsdp.py" "$@"
