#!/usr/bin/env bash
# Training data of the v9 IE adapter (recipes/ie-adapter-default-v9.yaml), made for a GPU run: every training
# set this project has, in OneKE's layout, asked as the default model is asked (models/default.py
# DEFAULT_IE_OPTIONS): relation schemas both one relation a prompt and in batches of 4, with the batches
# that have nothing to find kept in part; some texts joined so that answers fill several relations;
# CoNLL04's and Re-DocRED's relations also under snake_case names. Run from the repository root:
#   bash recipes/data/ie-adapter-v9.sh [../shared/data] [runs/ie-v9]
# Held out (never trained on): the evaluation sets of bench/ie_quality.py (CoNLL04 dev, FinRE and SanWen
# valid, CoNLL-2003 valid, 1,000 CLUENER texts with seed 0), 150 Re-DocRED dev documents (seed 21) and the
# relation types of redocred-unseen-relations.txt in every Re-DocRED document.
set -euo pipefail
S=${1:-../shared/data}
D=${2:-runs/ie-v9}
K="python -m knowlm.cli.main data convert-ie"
UNSEEN=$(paste -sd, "$(dirname "$0")/redocred-unseen-relations.txt")
SNAKE=$(python -c "import json,sys; print(','.join(f'{n}={n.replace(\" \", \"_\")}' for n in \
json.load(open(sys.argv[1])).values() if ' ' in n and ',' not in n and n not in sys.argv[2].split(',')))" \
  "$S/redocred/rel_info.json" "$UNSEEN")
mkdir -p "$D"
pick() { shuf -n "$1" --random-source=<(yes) "$2"; }

# NER: CLUENER without bench/ie_quality.py's 1,000 held-out texts (seed 0); CoNLL-2003 train
$K cluener "$S/cluener/train.json" --out "$D/cluener.jsonl" --holdout 1000 --holdout-out "$D/tmp.jsonl" \
  --negatives 4 --seed 0
$K conll2003 "$S/conll2003/train.txt" --out "$D/conll.jsonl" --negatives 99 --detokenize --seed 4
# RE, batches of 4 (as a schema of more than 4 relations is asked) and one relation a prompt
C="$K conll04 $S/conll04/train.json --negatives 99 --detokenize"
$C --out "$D/conll04-a.jsonl" --keep-empty 0.5 --seed 1
$C --out "$D/conll04-b.jsonl" --keep-empty 0.3 --seed 2 --join 0.5
$C --out "$D/conll04-one.jsonl" --keep-empty 0.25 --seed 3 --schema-batch-size 1
$C --out "$D/conll04-snake.jsonl" --keep-empty 0.3 --seed 5 --join 0.3 \
  --rename "work for=work_for,organization based in=headquartered_in,live in=live_in,located in=located_in"
$C --out "$D/conll04-snake-one.jsonl" --keep-empty 0.2 --seed 6 --schema-batch-size 1 \
  --rename "work for=works_for,organization based in=headquarters,live in=residence,located in=located_in"
F="$K finre $S/finre/train.txt --negatives 99"
$F --out "$D/finre-a.jsonl" --keep-empty 0.05 --seed 11
$F --out "$D/finre-b.jsonl" --keep-empty 0.05 --seed 12 --join 0.3
$F --out "$D/finre-one.jsonl" --keep-empty 0.03 --seed 13 --schema-batch-size 1
W="$K sanwen $S/sanwen/train.txt --negatives 99"
$W --out "$D/sanwen-a.jsonl" --keep-empty 0.1 --seed 21
$W --out "$D/sanwen-one.jsonl" --keep-empty 0.1 --seed 22 --schema-batch-size 1
R=($K docred "$S/redocred/dev.json" --holdout 150 --holdout-out "$D/tmp.jsonl" --exclude-types "$UNSEEN" --window 800)
"${R[@]}" --out "$D/redocred-a.jsonl" --negatives 99 --keep-empty 0.05 --seed 21
"${R[@]}" --out "$D/redocred-one.jsonl" --negatives 8 --keep-empty 0.3 --seed 21 --schema-batch-size 1
"${R[@]}" --out "$D/redocred-snake.jsonl" --negatives 99 --keep-empty 0.05 --seed 21 --rename "$SNAKE"
$K fewrel "$S/fewrel/val_wiki.json" --out "$D/fewrel.jsonl" --limit 4000 --seed 35 --schema-batch-size 1
for t in ner ee eet eea spo kg re; do cat "$S/instructkgc/$t/train.json"; done > "$D/kgc.jsonl"
rm -f "$D/tmp.jsonl"
# CoNLL04 (the smallest set) twice; SanWen (the largest) sampled
(cat "$D/cluener.jsonl"; pick 8000 "$D/conll.jsonl"; cat "$D"/conll04-*.jsonl "$D"/conll04-*.jsonl
 cat "$D"/finre-*.jsonl; pick 8000 "$D/sanwen-a.jsonl"; pick 8000 "$D/sanwen-one.jsonl"
 cat "$D"/redocred-*.jsonl "$D/fewrel.jsonl" "$D/kgc.jsonl" "$D/kgc.jsonl") \
  | shuf --random-source=<(yes) > "$D/train.jsonl"
wc -l "$D"/*.jsonl
