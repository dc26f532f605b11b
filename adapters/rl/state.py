"""What an SB3 trial's checkpoint holds, and how it is written and restored.

Besides SB3's own model zip (policy, optimizers, counters, temperature, the last observation,
the action space's generator): the replay buffer, the global random generators, δ's tuner, the
environments' generators and the training episode in progress (:mod:`adapters.rl.episode_log`).
That is everything the rest of the trial depends on, so a resumed trial produces the
uninterrupted trial's evaluations exactly, on the machine that wrote the checkpoint.

SB3's own ``save_replay_buffer`` pickles the whole preallocated buffer (1M rows whatever the fill,
2.8 GB for Humanoid); :func:`save_replay_buffer` writes only the filled rows, so checkpointing
after every evaluation stays proportional to the steps taken.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from adapters.errors import ConfigError
from adapters.rl.settings import sb3_class
from adapters.trial import TrialSpec

__all__ = [
    "save_replay_buffer", "load_replay_buffer", "save_rng_state", "load_rng_state", "write_state", "restore",
    "identity", "check_same_trial",
]

_SCALARS = ("pos", "full")


def save_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Write the filled rows of every per-row array of an SB3 replay buffer, plus its cursor."""
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        name: value[:size]
        for name, value in vars(buffer).items()
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size
    }
    with open(path, "wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Fill a freshly built buffer of the same size from :func:`save_replay_buffer`'s file."""
    with np.load(path) as data:
        for name in data.files:
            if name in _SCALARS:
                continue
            rows = data[name]
            target = getattr(buffer, name)
            if target.shape[1:] != rows.shape[1:] or len(rows) > len(target):
                raise ValueError(
                    f"replay buffer field {name!r} has shape {target.shape}, checkpoint has {rows.shape}: "
                    f"the trial's settings changed since the checkpoint was written"
                )
            target[: len(rows)] = rows
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])


def save_rng_state(path: str | Path) -> None:
    """Save the global Python, NumPy and torch (CPU and CUDA) generators."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, path)


def load_rng_state(path: str | Path) -> None:
    """Restore :func:`save_rng_state`'s generators (CUDA only if the device count matches)."""
    import torch

    state = _load(Path(path))
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# A whole trial's state
# --------------------------------------------------------------------------------------------

_MODEL, _REPLAY, _TUNER, _RNG, _ENVS, _EPISODE = (
    "model.zip", "replay.npz", "delta_tuner.pt", "rng.pt", "envs.pt", "episode.pt")


def write_state(directory: Path, model: Any, callback: Any, envs: dict[str, Any]) -> None:
    import torch

    from adapters.rl.envs import rng_state
    from adapters.rl.episode_log import episode_state

    # policy, optimizers, counters, temperature, the last observation and the action space's
    # generator (SB3's format)
    model.save(directory / _MODEL)
    if getattr(model, "replay_buffer", None) is not None:
        save_replay_buffer(model.replay_buffer, directory / _REPLAY)
    if callback is not None:
        torch.save(callback.state_dict(), directory / _TUNER)
    save_rng_state(directory / _RNG)
    torch.save({name: rng_state(env) for name, env in envs.items()}, directory / _ENVS)
    torch.save(episode_state(model.env), directory / _EPISODE)


def identity(spec: TrialSpec) -> dict[str, Any]:
    """What a checkpoint must have been written with to be resumed (JSON-normalised)."""
    identity = {"algo": spec.algo, "task": spec.task, "seed": spec.seed, "settings": dict(spec.settings)}
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def check_same_trial(spec: TrialSpec, saved: dict[str, Any] | None, state_dir: Path) -> None:
    if saved is not None and saved != identity(spec):
        raise ConfigError(
            f"the checkpoint in {state_dir.parent} belongs to another trial ({saved}); "
            f"write {spec.algo} on {spec.task} (seed {spec.seed}) to a new output folder"
        )


def _load(path: Path) -> Any:
    """One of the checkpoint's torch files; a missing or unreadable one is a one-line error."""
    import torch

    try:
        return torch.load(path, weights_only=False)
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        raise ConfigError(
            f"cannot resume from {path.parent.parent}: {path.name} is missing or corrupt ({type(error).__name__}); "
            f"delete that folder to restart the trial from scratch"
        ) from error


def restore(spec: TrialSpec, state_dir: Path, envs: dict[str, Any], device: Any, callback: Any) -> Any:
    import torch

    from adapters.rl.envs import set_rng_state
    from adapters.rl.episode_log import replay_episode

    env = envs["train"]
    try:
        # force_reset=False keeps the saved last observation: the episode is replayed below
        model = sb3_class(spec.algo).load(state_dir / _MODEL, env=env, device=device, force_reset=False)
        if (state_dir / _REPLAY).exists():
            load_replay_buffer(model.replay_buffer, state_dir / _REPLAY)
    except (ValueError, KeyError) as error:  # SB3 refuses other spaces or policy kwargs
        raise ConfigError(
            f"cannot resume {spec.algo} on {spec.task} from {state_dir.parent}: {error}; the checkpoint "
            f"was written with other settings: write to a new output folder"
        ) from error
    except Exception as error:  # noqa: BLE001 - a truncated zip or npz fails in many ways
        raise ConfigError(
            f"cannot resume from {state_dir.parent}: {_MODEL} or {_REPLAY} is missing or corrupt "
            f"({type(error).__name__}); delete that folder to restart the trial from scratch"
        ) from error
    if callback is not None and (state_dir / _TUNER).exists():
        callback.load_state_dict(_load(state_dir / _TUNER))
    episode = _load(state_dir / _EPISODE)
    if episode is not None:
        model._last_obs = replay_episode(model.env, episode, model._last_obs)
    for name, state in _load(state_dir / _ENVS).items():
        set_rng_state(envs[name], state)  # after the replay: the eval env's generator, the step counts
    load_rng_state(state_dir / _RNG)
    return model
