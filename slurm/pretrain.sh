#!/usr/bin/env bash
# Any run config on any allocation: the script `strata plan` prints for its best layout. The
# sized scripts (pretrain_7b.sh ... pretrain_175b.sh) are this script with their own #SBATCH header.
#
#   sbatch --nodes=8 --ntasks-per-node=8 --gpus-per-node=8 --export=ALL,CONFIG=configs/pretrain_7b.yaml \
#     slurm/pretrain.sh --set parallel.tp=2                 # from the repository root
#   CONFIG=configs/pretrain_7b.yaml NODES=8 GPUS_PER_NODE=8 slurm/pretrain.sh   # submits itself
#
# The header asks for one node and no GPUs; give the allocation on the sbatch line (GPU
# clusters: --gpus-per-node, as strata plan prints it).
#
# Environment (defaults in brackets; slurm/launch.sh has the full list):
#   CONFIG [required]         run config
#   SET [none]                extra --set options, space-separated ("train.steps=100 optim.lr=1e-4")
#   NODES, GPUS_PER_NODE      geometry when the script submits itself
#   RUNS [runs]               run folders go to $RUNS/<job name>-<job id> (RUN_DIR: the whole path)
#   STRATA [build/strata]     the binary; LAUNCHER [srun] or mpirun; SRUN_MPI [site default]
#   TIME, PARTITION, ACCOUNT, SBATCH_ARGS   more sbatch options when the script submits itself
#
# Preemption: Slurm sends SIGUSR1 to this shell 600 s before the time limit (--signal=B:...);
# it is forwarded to the ranks, which save a checkpoint and exit; the job requeues itself and
# resumes from that checkpoint in the same run folder. Logs: logs/<job name>-<job id>.out.
#SBATCH --job-name=strata
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

CONFIG=${CONFIG:?set CONFIG to a run config, e.g. CONFIG=configs/pretrain_7b.yaml}
# Where strata is: sbatch runs a copy of this script, so ask Slurm for the original's path.
if [ -z "${STRATA_ROOT:-}" ]; then
  script=$0
  [ -n "${SLURM_JOB_ID:-}" ] && script=$(scontrol show job "$SLURM_JOB_ID" | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')
  STRATA_ROOT=$(cd "$(dirname "$script")/.." && pwd)
fi
# shellcheck source=slurm/launch.sh
source "$STRATA_ROOT/slurm/launch.sh"
strata_launch "$STRATA_ROOT/slurm/pretrain.sh" "$@"
