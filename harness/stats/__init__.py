"""Scores to statistics: normalization against each benchmark's references (``normalize``), the
vectorized stratified bootstrap (``bootstrap``), and rliable's interval estimates (``intervals``,
re-exported here)."""

from harness.stats.intervals import *  # noqa: F401,F403
from harness.stats.intervals import __all__  # noqa: F401
