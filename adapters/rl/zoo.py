"""rl-baselines3-zoo's published hyperparameters as the SB3 family's settings (``settings_from: rl-zoo3``).

The zoo's files are read, never its code: rl-zoo3 is installed without its dependencies
(``pip install --no-deps rl-zoo3==2.9.2``), so ``import rl_zoo3`` would fail; its folder is found
with ``importlib.util.find_spec`` and ``hyperparams/<sac|ppo>.yml`` is read with ``yaml.safe_load``.

- **Entry**: the task's Gymnasium id exactly (``gym:Pendulum-v1`` -> ``Pendulum-v1``; the id of a
  ``gym:module:id`` task); else the same name at the newest version the zoo has
  (``HalfCheetah-v5`` -> ``HalfCheetah-v4``: the zoo tunes MuJoCo at v4), which ``note`` says.
- **Code in values is never run**: ``policy_kwargs`` strings such as
  ``"dict(log_std_init=-2, activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]))"`` are read with
  :mod:`ast`, accepting only literals, lists, ``dict(...)`` / ``{...}`` and the activations named in
  :data:`ACTIVATION_NAMES` (``nn.ReLU`` -> ``"ReLU"``, the name the family's ``activation_fn``
  takes). Anything else is dropped with the reason.
- **Dropped, with the reason** (:class:`~adapters.published.Dropped`): the zoo's own options that
  are not SB3 hyperparameters (``n_timesteps``, ``policy``, ``n_envs``, ``normalize``,
  ``env_wrapper``, ...: the family trains one un-normalized environment with its own policy),
  linear schedules ``lin_<x>`` (a suite cannot write a schedule: SB3's default applies, not the
  schedule's first value), what an ERA variant refuses (``use_sde``, ``sde_sample_freq``,
  ``use_sde_at_warmup``, ``ent_coef``, ``target_entropy``) and anything else the algorithm has no
  setting for. The family checks what is taken like any suite setting.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import math
import re
from pathlib import Path
from typing import Any

import yaml

from adapters.errors import ConfigError, MissingDependencyError, UnknownNameError, close_names
from adapters.published import Dropped, PublishedSettings
from adapters.registry import algorithm

__all__ = [
    "SOURCE", "INSTALL", "ACTIVATION_NAMES", "published_settings", "translate", "zoo_file", "zoo_entry",
    "read_code_value",
]

SOURCE = "rl-zoo3"
INSTALL = "pip install --no-deps rl-zoo3==2.9.2"
#: the activations the SB3 family takes by name, as the zoo writes them (torch is imported as th there)
ACTIVATION_NAMES: dict[str, str] = {
    f"{prefix}{name}": name
    for name in ("ReLU", "Tanh", "ELU", "GELU", "SiLU", "LeakyReLU")
    for prefix in ("nn.", "th.nn.", "torch.nn.")
}
#: the zoo's options that are not SB3 hyperparameters -> why the SB3 family does without them
_ZOO_OPTIONS: dict[str, str] = {
    "n_timesteps": "the suite's budget sets how long a trial trains",
    "policy": "the SB3 family builds its own MLP policy (ERA's policy for the ERA variants)",
    "normalize": "the SB3 family has no VecNormalize: observations and rewards are used as the environment gives them",
    "env_wrapper": "the SB3 family applies none of rl-zoo3's environment wrappers",
    "vec_env_wrapper": "the SB3 family applies none of rl-zoo3's environment wrappers",
    "frame_stack": "the SB3 family stacks no frames",
    "callback": "the SB3 family runs its own callbacks",
    "env_kwargs": "the task id alone names the environment; rl-zoo3's env_kwargs are not passed",
    "eval_env_kwargs": "the task id alone names the environment; rl-zoo3's env_kwargs are not passed",
    "replay_buffer_class": "the SB3 family keeps SB3's own replay buffer",
    "replay_buffer_kwargs": "the SB3 family keeps SB3's own replay buffer",
}
_SCHEDULE = re.compile(r"^lin_([-+0-9.eE]+)$")


def _folder() -> Path:
    spec = importlib.util.find_spec("rl_zoo3")  # finds the package without running its __init__
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise MissingDependencyError(
            f"settings_from: {SOURCE} needs rl-zoo3's hyperparameter files, and rl-zoo3 is not installed: "
            f"install it with {INSTALL} (its own dependencies are not needed)"
        )
    return Path(folders[0])


def zoo_file(algo: str) -> Path:
    """The zoo's hyperparameter file for ``algo``'s SB3 class (``hyperparams/ppo.yml`` for ``ppo-era``)."""
    name = algorithm(algo).library.rsplit(".", 1)[-1].lower()
    path = _folder() / "hyperparams" / f"{name}.yml"
    if not path.is_file():
        raise MissingDependencyError(
            f"settings_from: rl-zoo3 has no {path.name} at {path.parent}: reinstall it with {INSTALL}"
        )
    return path


@functools.lru_cache(maxsize=None)
def _entries(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text()) or {}
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}


def _id_parts(env_id: str) -> tuple[str | None, str, int | None] | None:
    from gymnasium.envs.registration import parse_env_id

    try:
        return parse_env_id(env_id)
    except Exception:  # noqa: BLE001 - gymnasium raises its own Error for ids it cannot parse
        return None


def zoo_entry(algo: str, task: str) -> tuple[str, str, dict[str, Any]]:
    """``(entry, note, hyperparameters)`` of the zoo for ``algo`` on ``task`` (rule: module docstring)."""
    path = zoo_file(algo)
    entries = {k: v for k, v in _entries(path).items() if k not in ("default", "atari")}
    prefix, _, name = task.partition(":")
    listing = f"rl-zoo3's {path.name} has entries for {', '.join(sorted(entries))}"
    if prefix != "gym":
        raise UnknownNameError(f"{task} is not a gym: task, and rl-zoo3 keys its entries by Gymnasium id: remove "
                               f"settings_from for this task (give the algorithm `tasks:`); {listing}")
    env_id = name.rpartition(":")[2]  # gym:module:id -> id
    if env_id in entries:
        return env_id, "", entries[env_id]
    parts = _id_parts(env_id)
    others = []
    if parts is not None:
        for key in entries:
            other = _id_parts(key)
            if other is not None and other[:2] == parts[:2] and other[2] is not None:
                others.append((other[2], key))
    if others:
        key = max(others)[1]
        return key, f"rl-zoo3 has no {env_id}; its {key} entry is used", entries[key]
    close = close_names(env_id, entries)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise UnknownNameError(f"rl-zoo3 has no entry for {env_id} in {path.name}{hint}: remove settings_from for this "
                           f"task (give the algorithm `tasks:`) or write its settings yourself; {listing}")


def published_settings(source: str, algo: str, task: str) -> PublishedSettings:
    """The family hook of :mod:`adapters.registry`: what ``algo`` takes from ``source`` for ``task``."""
    if source != SOURCE:
        raise UnknownNameError(f"unknown settings_from {source!r} for {algo}: the SB3 family reads {SOURCE!r}")
    entry, note, hyperparameters = zoo_entry(algo, task)
    taken, dropped = translate(algo, hyperparameters)
    return PublishedSettings(SOURCE, f"rl_zoo3/hyperparams/{zoo_file(algo).name}", entry, note, taken, dropped)


def translate(algo: str, hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], tuple[Dropped, ...]]:
    """One zoo entry's hyperparameters as ``algo``'s settings: ``(taken, dropped)`` (module docstring)."""
    taken: dict[str, Any] = {}
    dropped: list[Dropped] = []
    for key, value in copy.deepcopy(hyperparameters).items():  # the file's entries are read once and shared
        reason = _why_not(algo, key, value)
        if reason is not None:
            dropped.append(Dropped(key, value, reason))
        elif key == "policy_kwargs":
            kwargs, unread = _policy_kwargs(value)
            dropped += unread
            if kwargs:
                taken[key] = kwargs
        else:
            taken[key] = value
    return taken, tuple(dropped)


def _why_not(algo: str, key: str, value: Any) -> str | None:
    """Why the family does not take the zoo's ``key: value`` for ``algo``; ``None`` if it does."""
    from adapters.rl.settings import _ERA_REFUSED, _allowed_sb3_keys, _class_name, _sb3_signature

    if key == "n_envs":
        return ("the SB3 family trains on one environment, as here" if value == 1 else
                "the SB3 family trains on one environment, so each rollout has n_steps steps, not n_envs x n_steps")
    if key == "normalize" and value is False:
        return "normalization is off, as in the SB3 family"
    if key in _ZOO_OPTIONS:
        return _ZOO_OPTIONS[key]
    row = algorithm(algo)
    if row.era and key in _ERA_REFUSED:
        return f"{algo} refuses it: {_ERA_REFUSED[key]}"
    if key not in _allowed_sb3_keys(algo):
        return f"{algo} has no setting {key}"
    schedule = _SCHEDULE.match(value) if isinstance(value, str) else None
    if schedule:
        default = _sb3_signature(_class_name(algo)).get(key, {}).get("default")
        then = f"SB3's default {default!r} applies" if default is not None else "SB3's default applies"
        return f"a linear schedule from {schedule.group(1)} to 0, which a suite cannot write: {then}"
    return None


def _policy_kwargs(value: Any) -> tuple[dict[str, Any], list[Dropped]]:
    """The zoo's ``policy_kwargs`` (a ``dict(...)`` string, or a mapping) as plain data, key by key:
    a key whose value cannot be read without running code is dropped with the reason."""
    if isinstance(value, dict):
        items = {str(k): v for k, v in value.items()}
        read = {}
        for key, item in items.items():
            read[key] = ACTIVATION_NAMES.get(item, item) if key == "activation_fn" and isinstance(item, str) else item
        return read, []
    if not isinstance(value, str):
        wanted = f"expected a dict(...) string or a mapping, got {type(value).__name__}"
        return {}, [Dropped("policy_kwargs", value, wanted)]
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except SyntaxError as error:
        return {}, [Dropped("policy_kwargs", value, f"not a Python expression ({error.msg}); it is read, never run")]
    pairs = _dict_pairs(node)
    if pairs is None:
        return {}, [Dropped("policy_kwargs", value, f"{_refusal(node)}; only dict(...) or {{...}} is read, never run")]
    read, dropped = {}, []
    for key, item in pairs:
        try:
            read[key] = _literal(item)
        except ConfigError as error:
            dropped.append(Dropped(f"policy_kwargs.{key}", ast.unparse(item), f"{error}; it is read, never run"))
    return read, dropped


def read_code_value(text: str) -> Any:
    """The plain data a zoo string such as ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``
    stands for, read with :mod:`ast` and never run; raises ``ConfigError`` for anything else."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ConfigError(f"{text!r} is not a Python expression ({error.msg})") from None
    return _literal(node)


def _dict_pairs(node: ast.AST) -> list[tuple[str, ast.AST]] | None:
    """The (key, value node) pairs of ``dict(k=v, ...)`` or ``{"k": v, ...}``; ``None`` for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args \
            and all(k.arg is not None for k in node.keywords):
        return [(k.arg, k.value) for k in node.keywords]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
        return [(k.value, v) for k, v in zip(node.keys, node.values)]
    return None


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ConfigError(f"{ast.unparse(node)} is not a finite number")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    pairs = _dict_pairs(node)
    if pairs is not None:
        return {key: _literal(value) for key, value in pairs}
    dotted = _dotted(node)
    if dotted is not None and dotted in ACTIVATION_NAMES:
        return ACTIVATION_NAMES[dotted]
    raise ConfigError(_refusal(node))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner is not None else None
    return None


def _refusal(node: ast.AST) -> str:
    text = ast.unparse(node)
    text = text if len(text) <= 80 else text[:79] + "…"
    if _dotted(node) is not None:
        known = ", ".join(sorted(set(ACTIVATION_NAMES.values())))
        return f"{text} is not a name rl-zoo3 values may use here (known: the activations {known})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return f"{text} is not dict(key=value, ...)"
    if isinstance(node, ast.Call):
        return f"{text} calls something other than dict(...)"
    return f"{text} is not plain data (numbers, strings, booleans, lists, dict(...))"
