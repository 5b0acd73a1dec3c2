"""Pretraining corpora: read sources, clean, deduplicate, split into sentences, pack into samples and store
token ids in memory-mapped indexed datasets (``.bin`` + ``.idx``) for `knowlm pretrain`."""
