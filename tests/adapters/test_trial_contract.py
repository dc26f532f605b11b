"""The trial contract: records, atomic checkpoints, the registry's errors."""

import json
import math
import os

import pytest

from adapters.trial.checkpoint import TrialCheckpoint
from adapters.errors import TrainingDivergedError, UnknownNameError
from adapters.registry import ALGORITHMS, baseline_of, budget_unit, family_for, is_era
from adapters.trial import EvalRecord, TrialSpec


def _records(n: int) -> list[EvalRecord]:
    return [EvalRecord(step=100 * i, score=float(i), entropy=-0.5 * i, wall_time_s=1.5 * i,
                       metrics={"delta": 0.1 * i}) for i in range(1, n + 1)]


def test_record_row_round_trip():
    record = _records(1)[0]
    row = record.as_row()
    assert row == {"step": 100, "score": 1.0, "entropy": -0.5, "wall_time_s": 1.5, "delta": 0.1}
    assert EvalRecord.from_row(row) == record


def test_non_finite_record_raises_diverged():
    spec = TrialSpec("sac-era", "gym:Pendulum-v1", 0, 100)
    record = EvalRecord(step=5, score=math.nan, entropy=0.0, wall_time_s=0.0)
    with pytest.raises(TrainingDivergedError, match="non-finite score at step 5"):
        record.check_finite(spec)


def test_checkpoint_round_trip_and_replacement(tmp_path):
    checkpoint = TrialCheckpoint(tmp_path / "ckpt")
    assert checkpoint.load() is None and checkpoint.records() == []
    checkpoint.save(lambda d: (d / "state.bin").write_bytes(b"one"), _records(1), {"steps": 100})
    checkpoint.save(lambda d: (d / "state.bin").write_bytes(b"two"), _records(2), {"steps": 200})
    restored = checkpoint.load()
    assert restored.counters == {"steps": 200}
    assert (restored.state_dir / "state.bin").read_bytes() == b"two"
    assert restored.records == _records(2)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["current"]  # no temp or old copies left


def test_checkpoint_survives_a_crash_between_renames(tmp_path):
    checkpoint = TrialCheckpoint(tmp_path / "ckpt")
    checkpoint.save(lambda d: (d / "state.bin").write_bytes(b"old"), _records(1))
    # a save that died after moving current aside and before moving the new one in
    os.replace(tmp_path / "ckpt" / "current", tmp_path / "ckpt" / "previous")
    (tmp_path / "ckpt" / "tmp-999").mkdir()
    (tmp_path / "ckpt" / "tmp-999" / "state.bin").write_bytes(b"half")
    restored = checkpoint.load()
    assert (restored.state_dir / "state.bin").read_bytes() == b"old"
    assert [r.step for r in restored.records] == [100]
    checkpoint.save(lambda d: (d / "state.bin").write_bytes(b"new"), _records(2))
    assert json.loads((tmp_path / "ckpt" / "current" / "progress.json").read_text())["records"][-1]["step"] == 200


def test_disabled_checkpoint_writes_nothing(tmp_path):
    checkpoint = TrialCheckpoint(None)
    called = []
    checkpoint.save(lambda d: called.append(d), _records(1))
    assert not checkpoint.enabled and called == [] and checkpoint.load() is None


def test_registry_unknown_algorithm_lists_known():
    with pytest.raises(UnknownNameError, match=r"unknown algorithm 'sacc'.*sac-era"):
        family_for("sacc")
    with pytest.raises(UnknownNameError):
        budget_unit("nope")


def test_every_era_algorithm_has_a_registered_baseline():
    era = [name for name, row in ALGORITHMS.items() if row.era]
    assert sorted(era) == ["grpo-era", "ppo-era", "resnet-era", "sac-era", "tdmpc2-era"]
    for era_algo in era:
        baseline = baseline_of(era_algo)
        assert baseline in ALGORITHMS and not is_era(baseline)
        assert budget_unit(era_algo) == budget_unit(baseline)
        assert ALGORITHMS[era_algo].family == ALGORITHMS[baseline].family
    assert all(row.baseline is None for row in ALGORITHMS.values() if not row.era)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_registry_row_names_a_family_that_knows_it(name):
    """Each family package has the contract's functions, and validates its own names only."""
    row = ALGORITHMS[name]
    family = family_for(name)
    assert family.__name__ == row.family and callable(family.validate) and callable(family.run)
    other = next(n for n, r in ALGORITHMS.items() if r.family != row.family)
    with pytest.raises(UnknownNameError):
        family.validate(TrialSpec(other, "digits", 0, 1))


def test_progress_is_read_through_the_checkpoint_module(tmp_path):
    from adapters.trial.checkpoint import PROGRESS_PATHS, parse_progress

    checkpoint = TrialCheckpoint(tmp_path / "ckpt")
    checkpoint.save(lambda d: None, _records(2), {"steps": 200})
    progress = parse_progress((tmp_path / "ckpt" / PROGRESS_PATHS[0]).read_bytes())
    assert progress.records() == _records(2) and progress.counters == {"steps": 200}
    with pytest.raises(ValueError, match="no list of records"):
        parse_progress(b"{}")


def test_family_defaults_cover_exactly_their_registry_rows():
    from adapters.llm.settings import DEFAULTS as LLM_DEFAULTS
    from adapters.rl.settings import ERA_SETTINGS
    from adapters.vision.settings import DEFAULTS as VISION_DEFAULTS

    def names(family: str) -> set[str]:
        return {name for name, row in ALGORITHMS.items() if row.family == family}

    assert set(VISION_DEFAULTS) == names("adapters.vision")
    assert set(LLM_DEFAULTS) == names("adapters.llm")
    assert set(ERA_SETTINGS) == {name for name in names("adapters.rl") if is_era(name)}
    assert names("adapters.tdmpc2") == {"tdmpc2", "tdmpc2-era"}
