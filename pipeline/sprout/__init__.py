"""sprout: grow a hand-written seed set into a clean instruction-tuning dataset, then LoRA-tune on it."""

__version__ = "0.1.0"
