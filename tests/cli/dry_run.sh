#!/usr/bin/env bash
# Nothing shipped or recommended is refused at launch (DESIGN.md invariant 8), checked in any
# build (a CPU-only one plans GPU jobs): `strata train --dry-run` passes
#   1. for every run config in configs/ as shipped, on the geometry of the Slurm script that
#      launches it (slurm/pretrain_*.sh: nodes x tasks per node) or else its own layout, with
#      pretrain_70b.yaml and pretrain_175b.yaml on GPUs;
#   2. for every layout `strata plan` prints (its top 10) for each shipped cluster file, with
#      the settings of the launch line it prints.
# usage: dry_run.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
source "$src/tests/cli/lib.bash"
cd "$src" || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

dry() {  # dry NAME ARGS...: strata train ARGS --dry-run succeeds
  local name="$1"; shift
  if timeout 60 "$strata" train "$@" --dry-run >"$tmp/out.txt" 2>&1; then
    echo "ok   $name: $(sed -n 1p "$tmp/out.txt")"
  else
    echo "FAIL $name: $(cat "$tmp/out.txt")"; failures=$((failures + 1))
  fi
}

# 1. the run configs, on their Slurm scripts' geometry
for config in configs/*.yaml; do
  ranks=0
  for script in slurm/pretrain_*.sh; do
    if grep -q "CONFIG:-$config}" "$script"; then
      nodes=$(sed -n 's/^#SBATCH --nodes=\([0-9]*\).*/\1/p' "$script")
      per_node=$(sed -n 's/^#SBATCH --ntasks-per-node=\([0-9]*\).*/\1/p' "$script")
      ranks=$((nodes * per_node))
    fi
  done
  where="$ranks ranks"; [ "$ranks" -eq 0 ] && where="its own layout"
  dry "$(basename "$config") on $where" --config "$config" --ranks "$ranks"
done
grep -q "device: cuda" configs/pretrain_70b.yaml || { echo "FAIL pretrain_70b.yaml is no longer a GPU job"; failures=$((failures + 1)); }

# 2. every layout the planner prints for each cluster file
plan_case() {  # plan_case MODEL CLUSTER GPUS [PLAN OPTIONS...]
  local model="$1" cluster="$2" gpus="$3"; shift 3
  if ! timeout 120 "$strata" plan --model "$model" --cluster "$cluster" --gpus "$gpus" --top 10 --json "$@" >"$tmp/plan.json" 2>"$tmp/plan.err"; then
    echo "FAIL plan $model $cluster $gpus: $(cat "$tmp/plan.err")"; failures=$((failures + 1)); return
  fi
  python3 - "$tmp/plan.json" "$gpus" >"$tmp/layouts.txt" <<'PY' || { echo "FAIL plan json"; failures=$((failures + 1)); return; }
import json, sys
d = json.load(open(sys.argv[1]))
device = "cuda" if "hardware.device=cuda" in d["command"] else "cpu"
for l in d["layouts"]:
    v = l["virtual_stages"]
    sets = [f"parallel.tp={l['tp']}", f"parallel.pp={l['pp']}", f"parallel.dp={l['dp']}",
            f"parallel.micro_batch_size={l['micro_batch_size']}", f"parallel.global_batch_size={d['global_batch']}",
            f"train.seq_len={d['seq_len']}", f"model.recompute={l['recompute']}",
            f"parallel.schedule={'interleaved_1f1b' if v > 1 else '1f1b'}", f"parallel.virtual_stages={v}",
            f"parallel.zero_stage={l['zero']}", f"parallel.sequence_parallel={'true' if l['sequence_parallel'] else 'false'}",
            f"hardware.device={device}"]
    print(l["layout"], " ".join("--set " + s for s in sets))
PY
  local n=0 layout sets
  while read -r layout sets; do
    # shellcheck disable=SC2086
    dry "plan $model $cluster $gpus: $layout" --config configs/demo.yaml --set "model=configs/models/$model.yaml" $sets \
      --ranks "$gpus"
    n=$((n + 1))
  done <"$tmp/layouts.txt"
  [ "$n" -gt 0 ] || { echo "FAIL plan $model $cluster $gpus printed no layout"; failures=$((failures + 1)); }
}
plan_case llama2_70b h100_sxm_80gb 512
plan_case gpt3_175b h100_sxm_80gb 1024
plan_case llama2_7b a100_sxm_80gb 64
plan_case llama2_13b a100_sxm_40gb 128
plan_case gpt2_124m cpu_node 4
plan_case tiny_gpt local 2
plan_case bench_layouts local 8 --ranks-per-node 8

if [ $failures -ne 0 ]; then echo "$failures case(s) failed"; exit 1; fi
echo "every shipped config and every printed layout passes the dry run"
