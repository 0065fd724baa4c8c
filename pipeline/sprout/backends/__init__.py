"""Model backends: one small contract, `generate(batch, sampling)`, and a persistent response cache around it."""

from sprout.backends.base import Backend, Completion, Sampling

__all__ = ["Backend", "Completion", "Sampling"]
