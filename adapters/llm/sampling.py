"""A prompt order that depends only on the seed and the epoch, so that a GRPO trial split into
segments (the LLM family stops TRL's trainer at every evaluation and resumes it from its
checkpoint) trains on exactly the prompts an unsplit run would.

TRL's ``RepeatSampler`` seeds a private generator once, when the sampler is built, and draws the
next permutation at each epoch; a resumed ``Trainer`` builds a new sampler, so its permutations
restart from the first, and the run's data order came to depend on ``eval.every``. Hugging Face's
``Trainer`` calls ``set_epoch`` on the sampler at the start of every epoch (resumed or not):
reseeding there from ``(seed, epoch)`` removes the dependence.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Sampler

from adapters.seeding import derived_seed

__all__ = ["EpochSeededSampler", "epoch_seeded"]


class EpochSeededSampler(Sampler):
    """Wraps TRL's ``RepeatSampler`` (anything with ``shuffle``, ``seed`` and ``generator``) and
    reseeds its generator from ``(seed, epoch)`` in :meth:`set_epoch`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seed = 0 if inner.seed is None else int(inner.seed)

    def set_epoch(self, epoch: int) -> None:
        if self.inner.shuffle:
            self.inner.generator.manual_seed(derived_seed(self.seed, epoch, 11))

    def __iter__(self) -> Iterator[int]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


@functools.cache
def epoch_seeded(trainer_class: type) -> type:
    """``trainer_class`` (a TRL ``GRPOTrainer`` or subclass) with its training sampler wrapped in
    :class:`EpochSeededSampler`; nothing else changes."""

    def _get_train_sampler(self, dataset=None):
        return EpochSeededSampler(super(subclass, self)._get_train_sampler(dataset))

    subclass = type(trainer_class.__name__, (trainer_class,), {
        "_get_train_sampler": _get_train_sampler,
        "__doc__": f"{trainer_class.__name__} with a prompt order set by (seed, epoch) only (adapters.llm.sampling).",
        "__module__": __name__,
    })
    return subclass
