"""Shared fixtures: one local Ray for the whole session (ray.init costs ~5 s; docs/harness.md).

Ray's processes inherit this environment: auth off everywhere (docs/harness.md), a short private
temp dir (unix socket paths are limited to 107 bytes), and ``tests/`` on ``PYTHONPATH`` so workers
can import the test-only env module named as their setup hook (docs/harness.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def ray_env(temp_dir: str) -> dict[str, str]:
    """Environment variables every Ray process of a test (driver, workers, `era run`) needs."""
    paths = [str(TESTS), str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {
        "RAY_TMPDIR": temp_dir,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
    }


@pytest.fixture(scope="session")
def ray_temp_dir():
    path = tempfile.mkdtemp(prefix="era-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def local_ray(ray_temp_dir):
    """A 2-CPU local Ray whose workers register ``gym:EraFailingStep-v0`` (tests/failing_envs.py)."""
    import ray

    env = ray_env(ray_temp_dir)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"worker_process_setup_hook": "failing_envs.register"},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line saying whether HumanoidBench's tests ran (they skip where it is not installed)."""
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        reports = terminalreporter.stats.get(outcome, [])
        counts[outcome] = sum(1 for r in reports if "test_humanoidbench.py" in getattr(r, "nodeid", ""))
    if any(counts.values()):
        terminalreporter.write_line(
            "HumanoidBench tests: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
        )
