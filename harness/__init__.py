"""era-harness: suites of ERA-vs-baseline trials, run with Ray Tune, reported with rliable."""

from adapters import __version__

__all__ = ["__version__"]
