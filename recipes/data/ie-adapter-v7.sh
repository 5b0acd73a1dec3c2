#!/usr/bin/env bash
# Training data of the v7 IE adapter (recipes/ie-adapter-default-v7.yaml): relations under the user's own
# names, several relations per answer, and both prompt layouts. Run from the repository root:
#   bash recipes/data/ie-adapter-v7.sh [../shared/data] [runs/ie-v7]
# Held out (never trained on): 150 Re-DocRED dev documents (seed 21) and, in every document, the relation
# types of redocred-unseen-relations.txt (UNSEEN); the evaluation files of bench/ie_quality.py are made with the same seed and holdout.
set -euo pipefail
S=${1:-../shared/data}
D=${2:-runs/ie-v7}
K="python -m knowlm.cli.main data convert-ie"
UNSEEN=$(paste -sd, "$(dirname "$0")/redocred-unseen-relations.txt")
mkdir -p "$D"
pick() { shuf -n "$1" --random-source=<(yes) "$2"; }

# Re-DocRED: 350 documents cut into pieces of at most 400 characters (sentence boundaries); Wikidata's labels
# and the same relations in snake_case
$K docred "$S/redocred/dev.json" --out "$D/redocred.jsonl" --holdout 150 --holdout-out "$D/redocred-heldout.jsonl" \
  --exclude-types "$UNSEEN" --window 400 --negatives 3 --keep-empty 0.2 --seed 21 --text-first 0.5
SNAKE=$(python - "$S/redocred/rel_info.json" "$UNSEEN" <<'PY'
import json, re, sys
unseen = set(sys.argv[2].split(","))
labels = [v for v in json.load(open(sys.argv[1])).values() if v not in unseen and "," not in v]
print(",".join(f"{v}={re.sub(r'[^0-9a-z]+', '_', v.lower()).strip('_')}" for v in labels))
PY
)
$K docred "$S/redocred/dev.json" --out "$D/redocred-snake.jsonl" --holdout 150 --holdout-out "$D/tmp.jsonl" \
  --exclude-types "$UNSEEN" --window 400 --negatives 3 --keep-empty 0.2 --seed 22 --text-first 0.5 --rename "$SNAKE"
# FewRel: one annotated pair a sentence, asked for its own relation
$K fewrel "$S/fewrel/val_wiki.json" --out "$D/fewrel.jsonl" --limit 2000 --seed 23 --text-first 0.5
# SanWen (Chinese prose), CoNLL04 and FinRE with joined texts (several relations an answer)
$K sanwen "$S/sanwen/train.txt" --out "$D/sanwen.jsonl" --negatives 3 --keep-empty 0.2 --join 0.3 --seed 24 \
  --text-first 0.5
C="$K conll04 $S/conll04/train.json --negatives 99 --keep-empty 0.3 --detokenize --join 0.5 --text-first 0.5"
$C --out "$D/conll04.jsonl" --seed 25
$C --out "$D/conll04-snake.jsonl" --seed 26 \
  --rename "work for=work_for,organization based in=headquartered_in,live in=live_in,located in=located_in"
$K finre "$S/finre/train.txt" --out "$D/finre.jsonl" --negatives 99 --keep-empty 0.1 --join 0.3 --seed 27 \
  --text-first 0.5
# NER replay: CLUENER without the 1,000 held-out texts of bench/ie_quality.py (seed 0), CoNLL-2003 train
$K cluener "$S/cluener/train.json" --out "$D/cluener.jsonl" --holdout 1000 --holdout-out "$D/tmp.jsonl" \
  --limit 3000 --negatives 4 --seed 0 --text-first 0.5
$K conll2003 "$S/conll2003/train.txt" --out "$D/conll.jsonl" --limit 1200 --negatives 99 --detokenize --seed 4 \
  --text-first 0.5
rm -f "$D/tmp.jsonl"
(pick 1300 "$D/redocred.jsonl"; pick 500 "$D/redocred-snake.jsonl"; pick 400 "$D/fewrel.jsonl"
 pick 600 "$D/sanwen.jsonl"; pick 300 "$D/conll04.jsonl"; pick 150 "$D/conll04-snake.jsonl"
 pick 300 "$D/finre.jsonl"; pick 250 "$D/cluener.jsonl"; pick 200 "$D/conll.jsonl") \
  | shuf --random-source=<(yes) > "$D/train.jsonl"
wc -l "$D/train.jsonl"
