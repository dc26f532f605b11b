"""``era board``: the board of the paper's claims, rebuilt from the committed reports, suites and
benchmark outputs; its rows checked against the reports and the benchmark files they come from."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.report import build_report, load_results
from harness.report.board import build_board
from harness.stats.paper import claim_of, claims, paper_results
from report_data import write_cpu_repro_shape

ROOT = Path(__file__).resolve().parents[2]


def _rows(board: str) -> dict[str, list[str]]:
    """The claim table's rows by claim, each a list of its cells."""
    lines = board.split("\n| Claim |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # past the header
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines]
    return {cells[0]: cells for cells in rows}


def test_the_committed_board_is_rebuilt_identically():
    board = build_board(ROOT / "reports", suites_dir=ROOT / "suites", benchmarks_dir=ROOT / "benchmarks" / "results",
                        out=ROOT / "reports" / "README.md")
    assert board == (ROOT / "reports" / "README.md").read_text(), "run `era board reports/` and commit it"


def _entries(node, path=()):
    """Every entry of paper_results.yaml that holds a baseline/ERA comparison or a stated claim."""
    if isinstance(node, dict):
        if {"era", "claim"} & set(node) or "benchmark" in node:
            yield ".".join(path)
            return
        for key, value in node.items():
            yield from _entries(value, (*path, key))


def test_the_board_has_a_row_for_every_claim_of_the_reference_table():
    entries = list(_entries(paper_results()))
    assert len(entries) == 13  # ppo, sac, tdmpc2, obac, fastsac; 2 x 2 classification; 3 LLM sets; overhead
    assert all(claim_of(e) is not None for e in entries), [e for e in entries if claim_of(e) is None]
    rows = _rows((ROOT / "reports" / "README.md").read_text())
    assert list(rows) == [c["claim"] for c in claims()]
    assert {claim_of(e)["claim"] for e in entries} == set(rows)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A reports folder with two cpu-repro-shaped reports: all 5 seeds, and 3 of them."""
    root = tmp_path_factory.mktemp("board")
    for name, seeds in (("cpu-repro", None), ("cpu-repro-small", 3)):
        results = write_cpu_repro_shape(root / "results" / name, seeds=seeds)
        report, _ = build_report(load_results(results), reps=200)
        (root / "reports" / name).mkdir(parents=True)
        (root / "reports" / name / "report.json").write_text(json.dumps(report))
    (root / "benchmarks").mkdir()
    return root


def test_a_claim_shows_its_largest_committed_run_with_the_reports_numbers(reports):
    from harness.report.markdown import signed_ci

    board = build_board(reports / "reports", suites_dir=ROOT / "suites", benchmarks_dir=reports / "benchmarks")
    report = json.loads((reports / "reports" / "cpu-repro" / "report.json").read_text())
    [ppo] = [r for r in report["headline"]["rows"] if r["x"] == "ppo-era"]
    row = _rows(board)["PPO-ERA over PPO on Gymnasium MuJoCo"]
    assert row[1] == "0.57 → 0.88 (aggregate normalized score)"
    assert "[cpu-repro](../../../" in row[3] and "(3 tasks × 5 seeds × 204,800 steps)" in row[3]
    assert "(4 tasks × 10 seeds × 1,003,520 steps)" in row[3]  # suites/mujoco-ppo.yaml
    assert row[4] == "[cpu-repro](cpu-repro/report.md)" and row[5] == "3 tasks × 5 seeds × 204,800 steps"
    assert row[6] == (f"`ppo-era` vs `ppo` (normalized): IQM {signed_ci(ppo['iqm_difference'])}, "
                      f"P(ERA > baseline) 1.000 [1.000, 1.000]")
    assert row[7] == f"**{ppo['verdict']}**" == "**ERA better**"
    # the suite also ran ResNet on digits: not CIFAR-10, and not a claim the suite names
    cifar = _rows(board)["ResNet-ERA over ResNet on CIFAR-10"]
    assert cifar[4].startswith("not run here: CIFAR-10") and "cifar10-resnet: 20 trials, 4 CPUs + 0.5 GPU each" in cifar[4]
    assert "resnet-era vs resnet on normalized scores (1 task × 5 seeds, 10 epochs)" in board.split("cpu-repro-small")[0]


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("era_overhead", ROOT / "benchmarks" / "era_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_overhead_row_reads_the_benchmark_outputs(reports, tmp_path):
    bench = _benchmark_module()
    rng = np.random.default_rng(0)
    plain = list(1e-3 * (1 + 0.05 * rng.random(50)))
    era = [t * 1.02 for t in plain]  # every pair 2% slower: the ratio and both ends are 1.02
    ratio, ci = bench.ratio_of_medians(plain, era)
    assert ratio == pytest.approx(np.median(era) / np.median(plain)) and ci == pytest.approx([1.02, 1.02])
    noisy = bench.ratio_of_medians(plain, list(1e-3 * (1 + 0.05 * rng.random(50))))
    assert noisy[1][0] < noisy[0] < noisy[1][1]
    result = {"device": "cpu", "command": "python benchmarks/era_overhead.py", "cpu_model": "test", "torch": "x",
              "threads": 1, "load": {"before": [1.0, 1.0, 1.0], "after": [2.0, 2.0, 2.0], "cpus": 2, "nice": 0},
              "measurements": [bench._measurement("SAC actor", plain, era),
                               bench._measurement("ResNet-18 head", plain, [t * 1.10 for t in plain])]}
    benchmarks = tmp_path / "results"
    bench.write_result(result, benchmarks / "era_overhead")
    summary = {"device": "NVIDIA H200", "tiny": False, "resnet50_era_over_plain": 1.031,
               "rows": [{"name": "resnet50", "figures": {"model": "resnet50, batch 256, 224x224", "precision": "bf16"}}]}
    (benchmarks / "gpu_check").mkdir()
    (benchmarks / "gpu_check" / "summary.json").write_text(json.dumps(summary))
    shutil.copytree(reports / "reports", tmp_path / "reports")
    row = _rows(build_board(tmp_path / "reports", suites_dir=ROOT / "suites", benchmarks_dir=benchmarks))[
        "ERA's computational overhead"]
    assert row[1] == "computational overhead below 7%"
    assert row[4] == ("[era_overhead (cpu)](../results/era_overhead/era_overhead.md)<br>"
                      "[gpu_check (NVIDIA H200)](../results/gpu_check/summary.json)")
    assert row[5] == "50 paired repeats<br>50 paired repeats<br>—"
    assert row[6] == ("SAC actor: +2.0% [+2.0%, +2.0%]<br>ResNet-18 head: +10.0% [+10.0%, +10.0%]<br>"
                      "resnet50, batch 256, 224x224, bf16: +3.1%")
    assert row[7] == "**within the claim**<br>**above the claim**<br>**within the claim (a point, no interval)**"
    summary["tiny"] = True  # a tiny check is no measurement: the row shows the CPU benchmark alone
    (benchmarks / "gpu_check" / "summary.json").write_text(json.dumps(summary))
    board = build_board(tmp_path / "reports", suites_dir=ROOT / "suites", benchmarks_dir=benchmarks)
    assert "gpu_check" not in board and "+2.0%" in board


def test_era_board_writes_checks_and_refuses_a_missing_folder(reports, tmp_path, capsys):
    folder = tmp_path / "reports"
    shutil.copytree(reports / "reports", folder)
    args = ["board", str(folder), "--suites", str(ROOT / "suites"), "--benchmarks", str(tmp_path / "none")]
    assert main([*args, "--check"]) == 1 and "is out of date" in capsys.readouterr().err
    assert main(args) == 0 and (folder / "README.md").read_text().startswith("# The paper's claims, reproduced")
    assert main([*args, "--check"]) == 0
    assert main(["board", str(tmp_path / "nope")]) == 2 and "does not exist" in capsys.readouterr().err


REPORTS = sorted((ROOT / "reports").glob("*/report.json"))


@pytest.mark.parametrize("path", REPORTS, ids=[p.parent.name for p in REPORTS])
def test_every_committed_report_starts_with_the_headline(path):
    from harness.report import render_markdown
    from harness.report.build import FORMAT

    report = json.loads(path.read_text())
    assert report.get("format", 1) == FORMAT, (
        f"{path.parent.name} predates the headline: regenerate it with `era report` from its results")
    text = path.with_suffix(".md").read_text()
    assert text.startswith(f"# ERA report: {report['suite']['name']}\n\n## Headline\n\n")
    assert text == render_markdown(report)  # the markdown is the JSON's, by the current renderer
