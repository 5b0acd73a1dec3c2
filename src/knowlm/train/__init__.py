"""Training: instruction tuning (LoRA/QLoRA/full) and its data."""
