"""sprout_trainer: LoRA SFT on sprout's JSONL (transformers + PEFT + TRL). Built by the trainer issue."""
