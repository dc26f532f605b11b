"""Scores to statistics: normalization against each benchmark's references (``normalize``), the
vectorized stratified bootstrap (``bootstrap``), rliable's interval estimates (``intervals``) and
ERA against its baseline with the verdict rule (``compare``), the last two re-exported here."""

from harness.stats.compare import *  # noqa: F401,F403
from harness.stats.compare import __all__ as _compare_all
from harness.stats.intervals import *  # noqa: F401,F403
from harness.stats.intervals import __all__ as _intervals_all

__all__ = [*_intervals_all, *_compare_all]
