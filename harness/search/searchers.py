"""Where a search's samples come from: Ray Tune's search algorithms, asked one sample at a time.

A sample's objective aggregates several trials (its seeds x tasks), which run as ordinary trials
of the store (keyed rows, resume, failures as data). So Tune's trial loop cannot run a sample as
one trial; its searchers are used through their public ``Searcher`` interface instead: ``suggest``
a sample, run its trials, then ``on_trial_complete`` with the objective. After a restart, the
samples already evaluated are told to the new searcher (``add_evaluated_point``), so it continues
from them.

- ``tpe``: Optuna's TPE sampler through ``ray.tune.search.optuna.OptunaSearch`` (the ``search``
  extra). Its first ``n_startup`` samples are random (Optuna's default is 10, more than a small
  search has; here a third of the samples, at least 2).
- ``random``: each sample drawn from Tune's own search-space domains with a generator seeded by
  (search seed, sample index): sample ``i`` is the same after any restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from adapters.errors import MissingDependencyError
from harness.suite.search import SearchSpec

__all__ = ["Searcher", "make_searcher", "METRIC"]

#: the name the objective is reported under to Tune's searchers (maximised)
METRIC = "objective"


class Searcher(Protocol):
    def suggest(self, index: int) -> dict[str, Any]:
        """The settings of sample ``index`` (0, 1, ... in the order they are asked for)."""

    def tell(self, index: int, value: float | None) -> None:
        """The objective of a sample this searcher suggested; ``None``: it failed."""

    def replay(self, settings: Mapping[str, Any], value: float | None) -> None:
        """The objective of a sample evaluated before this searcher existed (a resumed search)."""


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class RandomSearcher:
    """Independent draws from Tune's domains; nothing to learn from results."""

    def __init__(self, spec: SearchSpec) -> None:
        self._domains = {key: param.tune_domain() for key, param in spec.space.items()}
        self._seed = spec.seed

    def suggest(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self._seed, index])
        return {key: _plain(domain.sample(random_state=rng)) for key, domain in self._domains.items()}

    def tell(self, index: int, value: float | None) -> None:
        pass

    def replay(self, settings: Mapping[str, Any], value: float | None) -> None:
        pass


class TpeSearcher:
    """Optuna's TPE through Ray Tune's ``OptunaSearch``."""

    def __init__(self, spec: SearchSpec) -> None:
        try:
            import optuna
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise MissingDependencyError(
                "search method tpe needs Optuna: pip install 'era-harness[search]' (or use method: random)"
            ) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        startup = max(2, spec.samples // 3)
        sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)
        space = {key: param.tune_domain() for key, param in spec.space.items()}
        self._search = OptunaSearch(space=OptunaSearch.convert_search_space(space), metric=METRIC, mode="max",
                                    sampler=sampler)

    def suggest(self, index: int) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self._search.suggest(str(index)).items()}

    def tell(self, index: int, value: float | None) -> None:
        self._search.on_trial_complete(str(index), {METRIC: value} if value is not None else None,
                                       error=value is None)

    def replay(self, settings: Mapping[str, Any], value: float | None) -> None:
        self._search.add_evaluated_point(dict(settings), value, error=value is None)


def make_searcher(spec: SearchSpec) -> Searcher:
    """The searcher of ``spec.method``."""
    return TpeSearcher(spec) if spec.method == "tpe" else RandomSearcher(spec)
