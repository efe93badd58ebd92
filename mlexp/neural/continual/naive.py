"""Naive fine-tuning: train on each experience in turn with no protection against forgetting (the baseline)."""

from mlexp.neural.continual.loop import Plugin

__all__ = ["Naive"]


class Naive(Plugin):
    """Plain fine-tuning on each new experience; what every other strategy is compared with."""

    name = "naive"
