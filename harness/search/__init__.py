"""Search over a suite's settings (``search:`` in a suite): samples from Ray Tune's searchers, each
run on several seeds as ordinary trials, scored by a seed-aggregated objective, and the best
compared with the baseline on held-out seeds (:mod:`harness.search.driver`)."""

from __future__ import annotations

from harness.search.driver import SearchSummary, best_name, run_search, sample_name, search_trials

__all__ = ["run_search", "SearchSummary", "sample_name", "best_name", "search_trials"]
