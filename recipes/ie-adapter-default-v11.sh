#!/usr/bin/env bash
# v11 of the IE adapter for `--model default`: the exact average of v6 (stage 2, shipped before) and v10
# (v6 continued on relations asked as the default model asks them): `knowlm weights mix-lora`, each
# update weighted 0.5, rank 64, bfloat16. Measured in docs/ie-quality.md ("v11"). Run from the repository
# root; every step is skipped when its output exists, and the training step resumes when interrupted:
#   bash recipes/ie-adapter-default-v11.sh [../shared/data]
set -euo pipefail
S=${1:-../shared/data}
V6=runs/v6-adapter
K="python -m knowlm.cli.main"
if [ ! -f "$V6/adapter_model.safetensors" ]; then  # v6 as it was shipped
  mkdir -p "$V6"
  for f in adapter_config.json adapter_model.safetensors ie_instructions.json; do
    git show "ef7678c:src/knowlm/models/adapters/gemma-3-270m-ie/$f" > "$V6/$f"
  done
fi
[ -f runs/ie-v10/train.jsonl ] || bash recipes/data/ie-adapter-v10.sh "$S" runs/ie-v10
# 1,000 steps of 8: 76 minutes on 2 AVX2 cores in float32
[ -f runs/ie-adapter-v10/adapter_model.safetensors ] || $K finetune --config recipes/ie-adapter-default-v10.yaml
[ -d runs/ie-adapter-v11 ] || $K weights mix-lora --adapter "$V6" --adapter runs/ie-adapter-v10 \
  --weights 0.5,0.5 --dtype bfloat16 --out runs/ie-adapter-v11
