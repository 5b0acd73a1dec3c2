#!/usr/bin/env bash
# Training data of the v10 IE adapter (recipes/ie-adapter-default-v10.yaml): relations asked exactly the way
# the default model asks them (models/default.py DEFAULT_IE_OPTIONS): schemas of 5-32 relations in batches of
# 4 with the schema first (FinRE, SanWen, CoNLL04: every relation asked, a share of the empty batches kept),
# schemas of more than 32 one relation a prompt with the text first (Re-DocRED windows under Wikidata's
# names); the NER sets replayed in OneKE's layout. FinRE and SanWen, where v6 is weakest, get most records.
# Run from the repository root:
#   bash recipes/data/ie-adapter-v10.sh [../shared/data] [runs/ie-v10]
# Held out (never trained on): the evaluation sets of bench/ie_quality.py (CoNLL04 dev, FinRE and SanWen
# valid, CoNLL-2003 valid, 1,000 CLUENER texts with seed 0), 150 Re-DocRED dev documents (seed 21) and the
# relation types of redocred-unseen-relations.txt in every Re-DocRED document.
set -euo pipefail
S=${1:-../shared/data}
D=${2:-runs/ie-v10}
K="python -m knowlm.cli.main data convert-ie"
UNSEEN=$(paste -sd, "$(dirname "$0")/redocred-unseen-relations.txt")
mkdir -p "$D"
pick() { shuf -n "$1" --random-source=<(yes) "$2"; }

$K finre "$S/finre/train.txt" --out "$D/finre.jsonl" --negatives 99 --keep-empty 0.1 --seed 41
$K sanwen "$S/sanwen/train.txt" --out "$D/sanwen.jsonl" --negatives 99 --keep-empty 0.2 --seed 42
C="$K conll04 $S/conll04/train.json --negatives 99 --detokenize"
$C --out "$D/conll04.jsonl" --keep-empty 0.5 --seed 43
$C --out "$D/conll04-renamed.jsonl" --keep-empty 0.2 --seed 44 \
  --rename "work for=works_for,organization based in=headquartered_in,live in=lives_in,located in=located_in"
$K docred "$S/redocred/dev.json" --out "$D/redocred.jsonl" --holdout 150 --holdout-out "$D/tmp.jsonl" \
  --exclude-types "$UNSEEN" --window 400 --negatives 3 --keep-empty 0.2 --seed 21 \
  --schema-batch-size 1 --text-first 1
# NER replay: CLUENER without bench/ie_quality.py's 1,000 held-out texts (seed 0)
$K cluener "$S/cluener/train.json" --out "$D/cluener.jsonl" --holdout 1000 --holdout-out "$D/tmp.jsonl" \
  --limit 3000 --negatives 4 --seed 0
$K conll2003 "$S/conll2003/train.txt" --out "$D/conll.jsonl" --limit 1200 --negatives 99 --detokenize --seed 45
rm -f "$D/tmp.jsonl"
(pick 2800 "$D/finre.jsonl"; pick 2400 "$D/sanwen.jsonl"; pick 1000 "$D/conll04.jsonl"
 pick 300 "$D/conll04-renamed.jsonl"; pick 700 "$D/redocred.jsonl"
 pick 500 "$D/cluener.jsonl"; pick 300 "$D/conll.jsonl") \
  | shuf --random-source=<(yes) > "$D/train.jsonl"
wc -l "$D/train.jsonl"
