#!/usr/bin/env bash
# What speculative decoding (prompt lookup, `--speculative ngram`) gives: effective decode tok/s
# of `autoglm generate` (Qwen2.5-Coder-0.5B Q4_K_M, greedy) with speculation vs without, on
#   A: a code edit — a real source file of this repo (a few hundred tokens) and "rewrite it with
#      one change", where the answer copies most of the prompt (drafts succeed);
#   B: open-ended prose, where drafts mostly fail (speculation must cost next to nothing).
# Runs spec and off alternately over ROUNDS rounds (default 5); prints the median decode tok/s
# (generated − 1 tokens / time from the first token to the end) of each, their ratio, whether the
# outputs are identical (they must be: greedy), and the drafted / accepted token counts. Numbers
# only, no assertions; run it on a quiet machine. Not part of CI.
# Env: ROUNDS (5), THREADS (2), K (speculative k, default the engine's), MAX_A (320), MAX_B (192),
# AUTOGLM (default .build/release/autoglm; the debug binary works for a quick ROUNDS=1 check).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
QWEN="${AUTOGLM_MODELS:-$HOME/.cache/autoglm/models}/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
ROUNDS="${ROUNDS:-5}"; THREADS="${THREADS:-2}"; MAX_A="${MAX_A:-320}"; MAX_B="${MAX_B:-192}"; K="${K:-}"
need_autoglm; need_model "$QWEN"
RES="$(mktemp -d -t speculative.XXXXXX)"
at_exit "rm -rf '$RES'"

SOURCE=Sources/Engine/LoadedModel.swift
PROMPT_A="<|im_start|>user
Rewrite the following Swift file with one change: rename the stored property \`pool\` to \`workers\` everywhere. Reply with the complete file only.

\`\`\`swift
$(sed -n 1,56p "$SOURCE")
\`\`\`<|im_end|>
<|im_start|>assistant
"
PROMPT_B="<|im_start|>user
Write a long, imaginative story about a lighthouse keeper who finds a message in a bottle. Use vivid descriptions.<|im_end|>
<|im_start|>assistant
"

kflag=(); [ -n "$K" ] && kflag=(--speculative-k "$K")
run() {  # run WORKLOAD MODE ROUND
  local prompt max
  if [ "$1" = A ]; then prompt="$PROMPT_A"; max="$MAX_A"; else prompt="$PROMPT_B"; max="$MAX_B"; fi
  local extra=(--speculative "$2"); [ "$2" = ngram ] && extra+=("${kflag[@]+"${kflag[@]}"}")
  "$AUTOGLM" generate --model "$QWEN" --threads "$THREADS" --temp 0 --special --no-bos -n "$max" --json \
    --prompt "$prompt" "${extra[@]}" >"$RES/$1-$2-$3.json"
}

echo "model $QWEN; threads $THREADS; greedy; A: $SOURCE lines 1-56 + one-change rewrite (max $MAX_A tokens); B: prose (max $MAX_B); $ROUNDS alternating rounds; load average before: $(loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for w in A B; do
    # Alternate which mode goes first, so a drifting machine favours neither.
    if [ $((r % 2)) = 1 ]; then run "$w" ngram "$r"; run "$w" off "$r"; else run "$w" off "$r"; run "$w" ngram "$r"; fi
  done
done
echo "load average after: $(loadavg)"
python3 - "$RES" "$ROUNDS" <<'PY'
import json, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])
for w, label in [("A", "code edit"), ("B", "prose")]:
    runs = {m: [json.load(open(f"{res}/{w}-{m}-{r}.json")) for r in range(1, rounds + 1)] for m in ("ngram", "off")}
    tps = {m: statistics.median(x["decode_tokens_per_second"] for x in runs[m]) for m in runs}
    same = all(a["generated_ids"] == b["generated_ids"] for a, b in zip(runs["ngram"], runs["off"]))
    drafted = sum(x["spec_draft_tokens"] for x in runs["ngram"]) / rounds
    accepted = sum(x["spec_accepted_tokens"] for x in runs["ngram"]) / rounds
    n = statistics.median(len(x["generated_ids"]) for x in runs["ngram"])
    ratio = tps["ngram"] / tps["off"] if tps["off"] > 0 else float("nan")
    rate = f"{accepted / drafted:.0%}" if drafted else "-"
    print(f"{w} ({label}): {n:.0f} tokens; decode tok/s median: ngram {tps['ngram']:.1f}, off {tps['off']:.1f}, "
          f"ratio {ratio:.2f}x; outputs identical: {'yes' if same else 'NO'}; per run drafted {drafted:.0f}, accepted {accepted:.0f} ({rate})")
PY
