"""benchmarks/gpu_check.py at toy sizes on the CPU, so that the one GPU check is ready (and correct)
when a GPU comes: every check runs through the real trial code and ``era run`` and passes, and the
summary holds what a reader of a GPU run needs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import ray_env

ROOT = Path(__file__).resolve().parents[2]


def _have_tdmpc2() -> bool:
    from adapters.errors import MissingDependencyError
    from adapters.tdmpc2.upstream import check_available

    try:
        check_available()
        return True
    except MissingDependencyError:
        return False


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the toy run is the CPU path; on a GPU run the full check")
def test_tiny_run_passes_every_check_and_writes_both_summaries(gpu_check, tmp_path, ray_temp_dir, monkeypatch):
    for key, value in ray_env(ray_temp_dir).items():  # era run's own Ray: auth off, a short temp dir
        monkeypatch.setenv(key, value)
    threads = torch.get_num_threads()
    try:
        code = gpu_check.main(["--tiny", "--out", str(tmp_path / "out")])
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = {row["name"]: row for row in data["rows"]}
    optional = {"grpo": importlib.util.find_spec("trl") is None, "tdmpc2": not _have_tdmpc2()}
    problems = {name: row["error"] or row["checks"] for name, row in rows.items() if row["status"] != "pass"
                and not (row["status"] == "skipped" and optional.get(name))}
    assert code == 0 and not problems
    assert list(rows) == list(gpu_check.CHECKS) and data["ok"] is True
    assert data["device"] == "cpu" and data["device_type"] == "cpu" and data["tiny"] is True

    resnet = rows["resnet50"]["figures"]
    assert resnet["model"].startswith("resnet50") and resnet["precision"] == "fp32"
    assert data["resnet50_era_over_plain"] == pytest.approx(resnet["era_ms"] / resnet["plain_ms"], rel=1e-3)
    # 2 classes x 4 images in batches of 4, one epoch: 2 steps
    vision = rows["vision"]["figures"]
    assert vision["steps"] == 2 and vision["amp"] == "off (fp32)" and vision["channels_last"] is False
    assert vision["entropy_min"] >= 0.6 - 0.05
    assert rows["ppo"]["figures"]["entropy_cpu"] == pytest.approx(0.25, abs=0.01)  # ERA's target, 1 action dim
    share = rows["share"]["figures"]
    assert share["era_run_exit"] == 0 and share["devices_seen"] == ["cpu"]
    assert data["fractional_gpu_speedup"] == share["speedup_vs_one_at_a_time"] > 0
    assert rows["grpo"]["status"] == "skipped" or rows["grpo"]["figures"]["precision"].startswith("bf16")
    assert rows["tdmpc2"]["status"] == "skipped" or rows["tdmpc2"]["figures"]["steps_per_s"] > 0
    assert all(row["unjudged"] for name, row in rows.items() if name in ("resnet50", "vision", "share"))

    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert markdown.startswith("# GPU check\n") and "Device: **cpu**" in markdown
    assert markdown.count("| pass |") == sum(row["status"] == "pass" for row in rows.values()) >= len(rows) - 1
    assert "FAILED" not in markdown


def test_a_check_that_raises_is_its_own_row_and_the_others_still_run(gpu_check, tmp_path, monkeypatch):
    def broken(ctx, row):
        raise ValueError("the first line\nand more")

    def failing(ctx, row):
        ctx.judge(row, "holds", False)
        ctx.judge(row, "needs a GPU", False, full_only=True)

    monkeypatch.setattr(gpu_check, "CHECKS", {"broken": ("Broken", broken), "failing": ("Failing", failing)})
    ctx = gpu_check.Context(gpu_check.Sizes.tiny(), True, torch.device("cpu"), "cpu", tmp_path)
    broken_row, failing_row = gpu_check.run_check(ctx, "broken"), gpu_check.run_check(ctx, "failing")
    assert broken_row.status == "error" and broken_row.error == "ValueError: the first line"
    assert "Traceback" in broken_row.traceback
    assert failing_row.status == "fail" and failing_row.checks == {"holds": False}
    assert failing_row.unjudged == ["needs a GPU (was not met)"]
    data = gpu_check.summary_json(ctx, [broken_row, failing_row], 1.0)
    assert data["ok"] is False and data["resnet50_era_over_plain"] is None
    markdown = gpu_check.summary_markdown(data)
    assert "| Broken | error: ValueError: the first line |" in markdown and "FAILED: holds" in markdown


def test_unknown_check_names_are_refused(gpu_check, tmp_path, capsys):
    assert gpu_check.main(["--only", "resnet50,gpus", "--out", str(tmp_path)]) == 2
    assert "unknown check gpus: choose from resnet50, share, vision" in capsys.readouterr().err
    assert not tmp_path.joinpath("summary.json").exists()
