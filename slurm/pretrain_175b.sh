#!/usr/bin/env bash
# GPT-3 175B pre-training (configs/pretrain_175b.yaml) on 128 nodes x 8 GPUs (1024), one rank per GPU;
# layout tp8 x pp8 (4 virtual stages) x dp16 from `strata plan --model gpt3_175b --gpu h100 --gpus 1024`.
#
#   sbatch slurm/pretrain_175b.sh                          # from the repository root
#   sbatch slurm/pretrain_175b.sh --set train.steps=100    # arguments go to `strata train`
#   sbatch --nodes=4 slurm/pretrain_175b.sh                # sbatch options override the header
#   NODES=4 GPUS_PER_NODE=4 slurm/pretrain_175b.sh         # run, not sbatch: submits itself with them
#
# Environment (defaults in brackets; slurm/launch.sh has the full list):
#   CONFIG [configs/pretrain_175b.yaml]  run config
#   SET [none]                extra --set options, space-separated ("train.steps=100 optim.lr=1e-4")
#   NODES, GPUS_PER_NODE      geometry when the script submits itself [the header below]
#   RUNS [runs]               run folders go to $RUNS/<job name>-<job id> (RUN_DIR: the whole path)
#   STRATA [build/strata]     the binary; LAUNCHER [srun] or mpirun; SRUN_MPI [site default]
#   TIME, PARTITION, ACCOUNT, SBATCH_ARGS   more sbatch options when the script submits itself
#
# Preemption: Slurm sends SIGUSR1 to this shell 900 s before the time limit (--signal=B:...);
# it is forwarded to the ranks, which save a checkpoint and exit; the job requeues itself and
# resumes from that checkpoint in the same run folder. Logs: logs/<job name>-<job id>.out.
#SBATCH --job-name=strata-175b
#SBATCH --nodes=128
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --time=48:00:00
#SBATCH --signal=B:USR1@900
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
#SBATCH --exclusive
set -euo pipefail

CONFIG=${CONFIG:-configs/pretrain_175b.yaml}
# Where strata is: sbatch runs a copy of this script, so ask Slurm for the original's path.
if [ -z "${STRATA_ROOT:-}" ]; then
  script=$0
  [ -n "${SLURM_JOB_ID:-}" ] && script=$(scontrol show job "$SLURM_JOB_ID" | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')
  STRATA_ROOT=$(cd "$(dirname "$script")/.." && pwd)
fi
# shellcheck source=slurm/launch.sh
source "$STRATA_ROOT/slurm/launch.sh"
strata_launch "$STRATA_ROOT/slurm/pretrain_175b.sh" "$@"
