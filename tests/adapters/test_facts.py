"""Validation's library answers kept on disk: same answers as asking the library, never errors,
and a warm machine validates the smoke suite without importing torch, SB3 or torchvision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import facts
from adapters.errors import ConfigError
from adapters.facts import library_fact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "facts"


def _counting():
    calls = []

    @library_fact("numpy")
    def square(x):
        calls.append(x)
        if x < 0:
            raise ConfigError(f"x must be >= 0, got {x}")
        return {"square": x * x, "pair": (x, x)}

    return square, calls


def test_an_answer_is_computed_once_kept_as_json_and_read_back_identically(cache):
    square, calls = _counting()
    first = square(3)
    assert first == {"square": 9, "pair": [3, 3]}  # JSON's shape from the first call on
    assert [json.loads(p.read_text()) for p in cache.glob("*.json")] == [{"answer": first}]
    again, calls_again = _counting()  # another process: a fresh function object, same file
    assert again(3) == first and calls_again == []
    assert square(4) == {"square": 16, "pair": [4, 4]} and calls == [3, 4]


def test_errors_are_never_kept(cache):
    square, calls = _counting()
    for _ in range(2):
        with pytest.raises(ConfigError, match="x must be >= 0, got -1"):
            square(-1)
    assert calls == [-1, -1] and not list(cache.glob("*.json"))


def test_a_corrupt_file_is_recomputed_and_replaced(cache):
    square, _ = _counting()
    square(5)
    (path,) = cache.glob("*.json")
    for damage in ("{not json", json.dumps({"other": 1}), ""):
        path.write_text(damage)
        fresh, calls = _counting()
        assert fresh(5) == {"square": 25, "pair": [5, 5]} and calls == [5]
        assert json.loads(path.read_text()) == {"answer": {"square": 25, "pair": [5, 5]}}


def test_off_and_non_plain_arguments_bypass_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ERA_CACHE_DIR", "off")
    square, calls = _counting()
    square(2), square(2)
    assert calls == [2, 2] and facts.cache_dir() is None
    monkeypatch.setenv("ERA_CACHE_DIR", str(tmp_path / "c"))
    seen = []

    @library_fact()
    def kind(value):
        seen.append(value)
        return type(value).__name__

    assert kind(print) == kind(print) == "builtin_function_or_method" and len(seen) == 2
    assert not (tmp_path / "c").exists()


def test_an_unwritable_folder_still_answers(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ERA_CACHE_DIR", str(blocker))
    square, calls = _counting()
    assert square(6)["square"] == 36 and calls == [6]


def test_the_key_follows_library_versions_and_the_adapters_code(cache, monkeypatch):
    square, calls = _counting()
    square(7)
    monkeypatch.setattr(facts, "_version", lambda package: "99.0")
    fresh, calls = _counting()
    fresh(7)
    assert calls == [7] and len(list(cache.glob("*.json"))) == 2
    monkeypatch.setattr(facts, "_adapters_digest", lambda: "edited")
    fresh, calls = _counting()
    fresh(7)
    assert calls == [7] and len(list(cache.glob("*.json"))) == 3


def test_sb3_signature_from_the_cache_equals_sb3s_own(cache):
    import inspect

    import stable_baselines3

    from adapters.rl import settings

    for name in ("SAC", "PPO"):
        kept = settings._sb3_signature(name)
        assert kept == json.loads(json.dumps(settings._sb3_signature.uncached(name)))
        parameters = inspect.signature(getattr(stable_baselines3, name).__init__).parameters
        assert set(kept) == set(parameters)
        assert kept["learning_rate"]["annotation"] == {"union": ["float", "callable"]}
        assert kept["gamma"] == {"annotation": "float", "default": parameters["gamma"].default}
    assert settings._sb3_signature("SAC")["train_freq"]["annotation"] == {"union": ["int", {"tuple": ["int", "str"]}]}


def _imports_after_list(env: dict[str, str]) -> dict[str, bool]:
    code = ("import json, sys; from harness.cli import main; rc = main(['list', 'suites/smoke.yaml']); "
            "print(json.dumps({m: m in sys.modules for m in ('torch', 'stable_baselines3', 'torchvision')}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "24 trials" not in done.stdout and "8 trials" in done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_warm_machine_lists_the_smoke_suite_without_torch_sb3_or_torchvision(tmp_path):
    env = {**os.environ, "ERA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    cold = _imports_after_list(env)
    assert cold == {"torch": True, "stable_baselines3": True, "torchvision": True}  # they answered once
    assert _imports_after_list(env) == {"torch": False, "stable_baselines3": False, "torchvision": False}
