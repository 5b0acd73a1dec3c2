"""Weight tools in bounded memory: diff / recover, LoRA merge, checksums, download."""
