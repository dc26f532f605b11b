"""``report.md`` + ``report.json`` + figures for a results directory written by ``era run`` or
``era trial``: ``loading`` reads the store's tables, ``build`` computes every number
(``harness.stats``) and the figures (``plots``), ``markdown`` renders them, ``passk`` adds pass@k.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.report.build import build_report
from harness.report.loading import ResultsDir, default_out_dir, load_results
from harness.report.markdown import render_markdown
from harness.stats.bootstrap import DEFAULT_REPS

__all__ = ["ResultsDir", "build_report", "default_out_dir", "load_results", "render_markdown", "write_report"]


def write_report(results_dir: Path, out_dir: Path | None = None, *, reps: int = DEFAULT_REPS, seed: int = 0,
                 final: str = "last", bootstrap: str = "vectorized") -> Path:
    """Write ``report.md``, ``report.json`` and ``figures/*.png`` for ``results_dir``; returns the
    path of ``report.md``. ``out_dir`` defaults to ``reports/<suite-name>/``.

    Everything is computed and drawn in a temporary folder first, so bad input or a failure while
    drawing leaves ``out_dir`` as it was.
    """
    data = load_results(results_dir)
    report, figures = build_report(data, reps=reps, seed=seed, final=final, bootstrap=bootstrap)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(data)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "figures").mkdir(parents=True)
        for figure in figures:
            figure.draw(staging / "figures" / figure.name)
        (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n")
        (staging / "report.md").write_text(render_markdown(report))
        out_dir.mkdir(parents=True, exist_ok=True)
        old_figures = out_dir / f".figures.old-{os.getpid()}"
        if (out_dir / "figures").exists():
            os.replace(out_dir / "figures", old_figures)
        os.replace(staging / "figures", out_dir / "figures")
        shutil.rmtree(old_figures, ignore_errors=True)
        os.replace(staging / "report.json", out_dir / "report.json")
        os.replace(staging / "report.md", out_dir / "report.md")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "report.md"
