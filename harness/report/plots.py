"""Report figures: drawing only (numbers come from ``harness.stats``), PNG files via matplotlib's Agg.

Where rliable has the figure (interval estimates, probability of improvement, performance
profiles, sample-efficiency curves) its ``plot_utils`` draws it, so the report looks like the
paper's (Agarwal et al. 2021). Every function takes the output path and returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CurvePanel",
    "EntropyPanel",
    "algorithm_colors",
    "plot_aggregates",
    "plot_entropy",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "plot_sample_efficiency",
    "plot_sensitivity",
]

_DPI = 100
#: PNG metadata without the matplotlib version, so figures depend on the data only
_METADATA = {"Software": None}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", metadata=_METADATA)
    plt.close(fig)
    return path


def algorithm_colors(algorithms: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per algorithm (seaborn's colourblind palette), the same in every figure."""
    import seaborn as sns

    palette = sns.color_palette("colorblind", n_colors=max(len(algorithms), 1))
    return {a: tuple(palette[i % len(palette)]) for i, a in enumerate(algorithms)}


def plot_aggregates(
    estimates: Mapping[str, Mapping[str, tuple[float, float, float]]],
    metrics: Sequence[str],
    path: Path,
    *,
    colors: Mapping[str, tuple] | None = None,
    xlabel: str = "Normalized score",
) -> Path:
    """rliable's interval-estimate figure: one panel per metric, one bar (95% CI) per algorithm.

    ``estimates``: ``{algo: {metric: (point, low, high)}}``.
    """
    _pyplot()
    from rliable import plot_utils

    algos = list(estimates)
    height = max(1.2, 0.45 * len(algos))  # inches; the x label sits 0.6 inch below the axes
    points = {a: np.array([estimates[a][m][0] for m in metrics]) for a in algos}
    intervals = {a: np.array([[estimates[a][m][1] for m in metrics], [estimates[a][m][2] for m in metrics]])
                 for a in algos}
    names = [m.replace("_", " ").upper() if m == "iqm" else m.replace("_", " ").capitalize() for m in metrics]
    fig, _ = plot_utils.plot_interval_estimates(
        points, intervals, metric_names=names, algorithms=algos, colors=dict(colors or {}) or None,
        xlabel=xlabel, xlabel_y_coordinate=-0.6 / height, row_height=height / len(algos),
    )
    return _save(fig, path)


def plot_probability_of_improvement(
    estimates: Mapping[str, tuple[float, float, float]], path: Path, *, separator: str = " vs "
) -> Path:
    """rliable's P(X > Y) figure; ``estimates``: ``{"X<separator>Y": (point, low, high)}``."""
    plt = _pyplot()
    from rliable import plot_utils

    points = {k: np.array([v[0]]) for k, v in estimates.items()}
    intervals = {k: np.array([[v[1]], [v[2]]]) for k, v in estimates.items()}
    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.5 * len(estimates)))
    plot_utils.plot_probability_of_improvement(points, intervals, pair_separator=separator, ax=ax,
                                               xticks=[0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlim(-0.02, 1.02)
    ax.axvline(0.5, color="gray", linestyle=":", linewidth=1)
    return _save(fig, path)


def plot_performance_profiles(
    taus: np.ndarray,
    profiles: Mapping[str, np.ndarray],
    intervals: Mapping[str, np.ndarray],
    path: Path,
    *,
    colors: Mapping[str, tuple] | None = None,
    xlabel: str = r"Normalized score ($\tau$)",
) -> Path:
    """rliable's score-distribution figure: fraction of runs above each threshold, with 95% CIs."""
    plt = _pyplot()
    from rliable import plot_utils

    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        dict(profiles), taus, performance_profile_cis=dict(intervals), ax=ax,
        colors=dict(colors or {}) or None, xlabel=xlabel, labelsize="large", ticklabelsize="large",
    )
    ax.legend(loc="upper right", fontsize="medium")
    return _save(fig, path)


@dataclass
class CurvePanel:
    """One panel of IQM-against-steps curves: ``{algo: (steps,)}`` points and ``(2, steps)`` CIs."""

    title: str
    steps: np.ndarray
    points: Mapping[str, np.ndarray]
    intervals: Mapping[str, np.ndarray]
    ylabel: str = "IQM normalized score"


def plot_sample_efficiency(
    panels: Sequence[CurvePanel], path: Path, *, colors: Mapping[str, tuple] | None = None, xlabel: str = "Steps"
) -> Path:
    """rliable's sample-efficiency curves, one panel per task set (normalized, then raw tasks)."""
    plt = _pyplot()
    from rliable import plot_utils

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        plot_utils.plot_sample_efficiency_curve(
            panel.steps, dict(panel.points), dict(panel.intervals), algorithms=list(panel.points),
            colors=dict(colors or {}) or None, xlabel=xlabel, ylabel=panel.ylabel, ax=ax,
            labelsize="large", ticklabelsize="large",
        )
        ax.set_title(panel.title)
        ax.legend(fontsize="medium")
    return _save(fig, path)


@dataclass
class EntropyPanel:
    """Entropy over training on one task: ``{algo: (steps, mean, low, high)}`` and ERA floors."""

    task: str
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    floors: Mapping[str, float] = field(default_factory=dict)


def _panel_grid(count: int):
    """A figure with ``count`` panels, at most three per row; returns it and the visible axes."""
    plt = _pyplot()
    columns = min(count, 3)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def plot_entropy(
    panels: Sequence[EntropyPanel], path: Path, *, colors: Mapping[str, tuple] | None = None, xlabel: str = "Steps"
) -> Path:
    """Mean entropy across seeds (band: min to max) per algorithm, the ERA floor dashed."""
    fig, axes = _panel_grid(len(panels))
    colors = dict(colors or {})
    for ax, panel in zip(axes, panels):
        for algo, (steps, mean, low, high) in panel.curves.items():
            color = colors.get(algo)
            ax.plot(steps, mean, marker="o", markersize=3, color=color, label=algo)
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
            if algo in panel.floors:
                ax.axhline(panel.floors[algo], color=color, linestyle="--", linewidth=1.2,
                           label=f"{algo} floor")
        ax.set_title(panel.task)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("entropy (nats)")
        ax.grid(alpha=0.25)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_pass_at_k(
    panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]],
    path: Path,
    *,
    colors: Mapping[str, tuple] | None = None,
) -> Path:
    """Final pass@k (%) against k (log scale), one panel per task: ``{task: {algo: (k, mean, std)}}``,
    error bars one standard deviation over seeds."""
    fig, axes = _panel_grid(len(panels))
    colors = dict(colors or {})
    for ax, (task, curves) in zip(axes, panels.items()):
        for algo, (k, mean, std) in curves.items():
            ax.errorbar(k, mean, yerr=std, marker="o", markersize=3, capsize=3, color=colors.get(algo), label=algo)
        ax.set_xscale("log", base=2)
        ticks = sorted({int(v) for c in curves.values() for v in c[0]})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_title(task)
        ax.set_xlabel("k (samples per prompt)")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.25)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_sensitivity(
    key: str,
    values: Sequence,
    estimates: Sequence[tuple[float, float, float]],
    path: Path,
    *,
    label: str = "ERA",
    baseline: tuple[str, tuple[float, float, float]] | None = None,
    ylabel: str = "IQM normalized score",
) -> Path:
    """Aggregate score with 95% CIs against a swept setting's value (the paper's Figure 3)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    xs = np.asarray(values, dtype=float) if numeric else np.arange(len(values))
    points = np.array([e[0] for e in estimates])
    errors = np.array([[e[0] - e[1] for e in estimates], [e[2] - e[0] for e in estimates]])
    ax.errorbar(xs, points, yerr=errors, marker="o", capsize=4, label=label)
    if baseline is not None:
        name, (point, low, high) = baseline
        ax.axhline(point, color="gray", linestyle="--", label=name)
        ax.axhspan(low, high, color="gray", alpha=0.15)
    if not numeric:
        ax.set_xticks(xs, [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
