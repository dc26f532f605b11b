"""Seeds derived from a trial's seed: one independent stream per purpose (an epoch's shuffling, an
evaluation), reproducible and never correlated with the trial seed itself."""

from __future__ import annotations

import numpy as np

__all__ = ["derived_seed"]


def derived_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for ``stream`` (e.g. ``(epoch,)`` or ``(step, purpose)``) of a trial with
    ``seed``; negative trial seeds get streams of their own."""
    return int(np.random.SeedSequence([abs(int(seed)), int(seed < 0), *map(int, stream)]).generate_state(1)[0])
