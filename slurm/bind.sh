#!/usr/bin/env bash
# Per-rank wrapper that srun/mpirun start (slurm/launch.sh): binds the rank to its GPU and
# threads by its local rank on the node, then becomes the strata process (exec), so the
# signals srun and mpirun forward (SIGUSR1, SIGTERM) reach strata itself.
#   bash slurm/bind.sh strata train ...
set -euo pipefail
local_rank=${SLURM_LOCALID:-${OMPI_COMM_WORLD_LOCAL_RANK:-0}}

# GPU: with --gpus-per-node Slurm shows every GPU of the node to every task
# (CUDA_VISIBLE_DEVICES=0,1,...,7); local rank i takes the i-th. A site that binds GPUs itself
# (--gpu-bind, --gpus-per-task) leaves one visible, which is kept.
if [[ "${CUDA_VISIBLE_DEVICES:-}" == *,* ]]; then
  IFS=, read -ra gpus <<<"$CUDA_VISIBLE_DEVICES"
  export CUDA_VISIBLE_DEVICES=${gpus[local_rank % ${#gpus[@]}]}
fi
# Threads: where srun --cpu-bind / mpirun --bind-to have pinned the rank to its own cores (its
# affinity is narrower than the node), keep the OpenMP threads on those cores, next to each
# other. Where the rank may run anywhere (no binding: CPU_BIND=none, a Slurm that cannot bind,
# oversubscription), OpenMP is not told to bind: it would pin every rank's first thread to the
# node's first core, all ranks on one core.
# (nproc without the OMP_* variables: it would print OMP_NUM_THREADS, not the affinity.)
if [ "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" -lt "$(nproc --all)" ]; then
  export OMP_PLACES=${OMP_PLACES:-cores} OMP_PROC_BIND=${OMP_PROC_BIND:-close}
fi
export STRATA_LOCAL_RANK=$local_rank
exec "$@"
