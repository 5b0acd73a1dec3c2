#!/usr/bin/env bash
# Training data of the v8 IE adapter (recipes/ie-adapter-default-v8.yaml): relations asked the way the
# default model is asked them (models/default.py DEFAULT_IE_OPTIONS): one relation a prompt, the text before
# the schema, with most questions having nothing to find (as a user's schema mostly does for one sentence);
# entities replayed in OneKE's layout, as they are asked. Run from the repository root:
#   bash recipes/data/ie-adapter-v8.sh [../shared/data] [runs/ie-v8]
# Held out (never trained on): the evaluation sets of bench/ie_quality.py (CoNLL04 dev, FinRE and SanWen
# valid, CoNLL-2003 valid, 1,000 CLUENER texts with seed 0), 150 Re-DocRED dev documents (seed 21) and the
# relation types of redocred-unseen-relations.txt in every Re-DocRED document.
set -euo pipefail
S=${1:-../shared/data}
D=${2:-runs/ie-v8}
K="python -m knowlm.cli.main data convert-ie"
ONE="--schema-batch-size 1 --text-first 1"
UNSEEN=$(paste -sd, "$(dirname "$0")/redocred-unseen-relations.txt")
mkdir -p "$D"
pick() { shuf -n "$1" --random-source=<(yes) "$2"; }

C="$K conll04 $S/conll04/train.json --negatives 99 --detokenize $ONE"
$C --out "$D/conll04.jsonl" --keep-empty 0.25 --seed 31
$C --out "$D/conll04-snake.jsonl" --keep-empty 0.1 --seed 32 \
  --rename "work for=work_for,organization based in=headquartered_in,live in=live_in,located in=located_in"
$K finre "$S/finre/train.txt" --out "$D/finre.jsonl" --negatives 99 --keep-empty 0.04 --seed 33 $ONE
$K sanwen "$S/sanwen/train.txt" --out "$D/sanwen.jsonl" --negatives 99 --keep-empty 0.1 --seed 34 $ONE
$K docred "$S/redocred/dev.json" --out "$D/redocred.jsonl" --holdout 150 --holdout-out "$D/tmp.jsonl" \
  --exclude-types "$UNSEEN" --window 400 --negatives 3 --keep-empty 0.2 --seed 21 $ONE
$K fewrel "$S/fewrel/val_wiki.json" --out "$D/fewrel.jsonl" --limit 1000 --seed 35 $ONE
# NER replay, OneKE's layout and batches: CLUENER without bench/ie_quality.py's 1,000 held-out texts (seed 0)
$K cluener "$S/cluener/train.json" --out "$D/cluener.jsonl" --holdout 1000 --holdout-out "$D/tmp.jsonl" \
  --limit 3000 --negatives 4 --seed 0
$K conll2003 "$S/conll2003/train.txt" --out "$D/conll.jsonl" --limit 1200 --negatives 99 --detokenize --seed 4
rm -f "$D/tmp.jsonl"
(pick 700 "$D/conll04.jsonl"; pick 250 "$D/conll04-snake.jsonl"; pick 700 "$D/finre.jsonl"
 pick 700 "$D/sanwen.jsonl"; pick 500 "$D/redocred.jsonl"; pick 250 "$D/fewrel.jsonl"
 pick 300 "$D/cluener.jsonl"; pick 200 "$D/conll.jsonl") \
  | shuf --random-source=<(yes) > "$D/train.jsonl"
wc -l "$D/train.jsonl"
