#!/usr/bin/env bash
# `strata prepare` under mpirun gives byte-identical /tokens and /doc_offsets for 1, 2 and 4
# ranks, and deduplicates globally: duplicates planted in files that different ranks read are
# removed whatever the rank count.
# usage: prepare_determinism.sh STRATA_BINARY SOURCE_DIR
set -euo pipefail
strata="$1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Eight input files of distinct paragraphs; copies of file 0's documents planted in files 5
# and 7 (exact, and near: an attribution line added), so the first copy and the duplicates
# land on different ranks for 2 and 4 ranks.
python3 - "$tmp/in" <<'PY'
import json, os, random, sys
out = sys.argv[1]; os.makedirs(out)
words = ("river mountain light garden people ancient market winter letter window silver morning harbour "
         "stories village forest travel teacher evening kitchen bridge meadow candle thunder orchard").split()
glue = "the and of a with under near from".split()
rng = random.Random(7)
def para(n=90):
    return " ".join(rng.choice(words) if i % 2 == 0 else rng.choice(glue) for i in range(n)) + "."
docs = [[para() for _ in range(40)] for _ in range(8)]
docs[5][3] = docs[0][1]                              # exact duplicate, another rank's share
docs[7][10] = docs[0][2] + "\n  -- Anonymous"        # near duplicate
docs[7][11] = docs[0][1]                             # a second exact copy
docs[3][5] = "Contact ops@example.com or 10.0.0.1 " + para()
for i, ds in enumerate(docs):
    with open(os.path.join(out, f"part{i}.jsonl"), "w") as f:
        for d in ds:
            f.write(json.dumps({"text": d}) + "\n")
PY

digests=()
for n in 1 2 4; do
  mpiexec -n $n --oversubscribe "$strata" prepare --input "$tmp/in" --output "$tmp/out$n.h5" \
    --progress 0 --report "$tmp/report$n.json" >"$tmp/log$n.txt"
  d=$("$strata" data inspect "$tmp/out$n.h5" --digest | awk '/content digest/ {print $3}')
  echo "ranks $n: digest $d"
  digests+=("$d")
  python3 - "$tmp/report$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["documents_read"] == 320, r
assert r["exact_duplicates"] == 2, f"exact duplicates: {r['exact_duplicates']} (want 2)"
assert r["near_duplicates"] == 1, f"near duplicates: {r['near_duplicates']} (want 1)"
assert r["documents_written"] == 317, r
assert r["pii_emails"] == 1 and r["pii_ipv4"] == 1, r
PY
done
[ "${digests[0]}" = "${digests[1]}" ] && [ "${digests[0]}" = "${digests[2]}" ] || { echo "FAIL: digests differ"; exit 1; }
cmp <(python3 -c "import json;print(json.load(open('$tmp/report1.json')))") \
    <(python3 -c "import json;print(json.load(open('$tmp/report4.json')))")
echo "prepare is identical on 1, 2 and 4 ranks; duplicates across ranks removed"

# With the learned quality filter (a model trained on the same paragraphs against their
# word-shuffled copies, Pareto sampling as in GPT-3, plus planted shuffled documents): the
# same documents kept, the same /doc_scores, on 1 and 4 ranks.
python3 - "$tmp/in" <<'PY'
import json, os, random, sys
rng = random.Random(11)
with open(os.path.join(sys.argv[1], "part0.jsonl")) as f:
    docs = [json.loads(l)["text"] for l in f]
with open(os.path.join(sys.argv[1], "part6.jsonl"), "a") as f:
    for d in docs[:12]:
        w = d.split(); rng.shuffle(w)
        f.write(json.dumps({"text": " ".join(w)}) + "\n")
PY
"$strata" quality train --positive "$tmp/in/part1.jsonl" "$tmp/in/part2.jsonl" "$tmp/in/part3.jsonl" \
  --shuffled-negatives --hash-bits 14 --out "$tmp/q.bin" >"$tmp/qlog.txt"
qdigests=(); scores=()
for n in 1 4; do
  mpiexec -n $n --oversubscribe "$strata" prepare --input "$tmp/in" --output "$tmp/q$n.h5" --progress 0 \
    --quality-model "$tmp/q.bin" --quality-pareto 9 --report "$tmp/qreport$n.json" >"$tmp/qlog$n.txt"
  qdigests+=("$("$strata" data inspect "$tmp/q$n.h5" --digest | awk '/content digest/ {print $3}')")
  scores+=("$(h5dump -d /doc_scores "$tmp/q$n.h5" | sed -n '/DATA {/,/}/p' | md5sum)")
  python3 - "$tmp/qreport$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["quality.docs"] >= 10, f"the quality filter removed {r['quality.docs']} documents (want >= 10 of 12 shuffled)"
PY
done
[ "${qdigests[0]}" = "${qdigests[1]}" ] || { echo "FAIL: digests with the quality filter differ"; exit 1; }
[ "${scores[0]}" = "${scores[1]}" ] || { echo "FAIL: /doc_scores differ between 1 and 4 ranks"; exit 1; }
cmp "$tmp/qreport1.json" "$tmp/qreport4.json"
echo "prepare with the quality classifier is identical on 1 and 4 ranks ($(python3 -c "import json;print(json.load(open('$tmp/qreport1.json'))['quality.docs'])") removed)"
