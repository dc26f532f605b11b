"""rl-baselines3-zoo's hyperparameters as the SB3 family's settings (adapters/rl/zoo.py).

Expected values come from the zoo's own files, read here with yaml, never from a run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from adapters.errors import ConfigError, MissingDependencyError, UnknownNameError
from adapters.rl.settings import resolve_settings
from adapters.rl.zoo import INSTALL, published_settings, read_code_value, translate
from adapters.trial import TrialSpec


def zoo_yml(name: str) -> dict:
    folder = Path(list(importlib.util.find_spec("rl_zoo3").submodule_search_locations)[0])
    return yaml.safe_load((folder / "hyperparams" / f"{name}.yml").read_text())


def _accounted_for(published, entry: dict) -> None:
    """Every hyperparameter of the entry is taken with the zoo's value, or dropped with a reason."""
    dropped = {d.key.split(".")[0] for d in published.dropped}
    assert set(published.taken) | dropped == set(entry)
    assert all(d.reason for d in published.dropped)
    for key, value in published.taken.items():
        if key != "policy_kwargs":  # a string of code in the zoo, read into data (below)
            assert value == entry[key], key


def test_ppo_on_pendulum_takes_the_zoo_values_and_names_what_it_drops():
    entry = zoo_yml("ppo")["Pendulum-v1"]
    published = published_settings("rl-zoo3", "ppo", "gym:Pendulum-v1")
    assert (published.entry, published.note, published.file) == ("Pendulum-v1", "", "rl_zoo3/hyperparams/ppo.yml")
    _accounted_for(published, entry)
    assert {"gamma", "gae_lambda", "n_steps", "learning_rate"} <= set(published.taken)
    assert {"n_envs", "n_timesteps", "policy"} <= {d.key for d in published.dropped}


@pytest.mark.parametrize(("zoo", "baseline", "era"), [("ppo", "ppo", "ppo-era"), ("sac", "sac", "sac-era")])
def test_the_era_variant_drops_gsde_with_the_reason_and_the_baseline_takes_it(zoo, baseline, era):
    env_id, entry = next((k, v) for k, v in zoo_yml(zoo).items() if v.get("use_sde") is True)
    base = published_settings("rl-zoo3", baseline, f"gym:{env_id}")
    assert base.taken["use_sde"] is True
    _accounted_for(base, entry)
    variant = published_settings("rl-zoo3", era, f"gym:{env_id}")
    _accounted_for(variant, entry)
    gsde = [d for d in variant.dropped if d.key in ("use_sde", "sde_sample_freq", "use_sde_at_warmup")]
    assert "use_sde" in {d.key for d in gsde} and all("gSDE" in d.reason and era in d.reason for d in gsde)
    assert not {"use_sde", "sde_sample_freq", "use_sde_at_warmup", "ent_coef"} & set(variant.taken)
    resolve_settings(TrialSpec(era, f"gym:{env_id}", 0, 1000, settings=dict(variant.taken)))  # ERA takes the rest


def test_a_policy_kwargs_string_becomes_settings_the_family_accepts():
    assert read_code_value(
        "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]), )"
    ) == {"log_std_init": -2, "ortho_init": False, "activation_fn": "ReLU", "net_arch": {"pi": [256], "vf": [256]}}
    assert read_code_value("{'a': th.nn.Tanh, 'b': (1, -2.5)}") == {"a": "Tanh", "b": [1, -2.5]}
    ppo = zoo_yml("ppo")
    env_id = next(k for k, v in ppo.items() if "activation_fn=nn.ReLU" in str(v.get("policy_kwargs", "")))
    published = published_settings("rl-zoo3", "ppo", f"gym:{env_id}")
    kwargs = published.taken["policy_kwargs"]
    assert kwargs["activation_fn"] == "ReLU" and "net_arch" in kwargs
    import torch.nn as nn

    assert resolve_settings(TrialSpec("ppo", f"gym:{env_id}", 0, 1000, settings={"policy_kwargs": kwargs})
                            ).policy["activation_fn"] is nn.ReLU


def test_code_in_a_zoo_value_is_refused_never_run(tmp_path):
    marker = tmp_path / "ran"
    attack = f"__import__('os').system('touch {marker}')"
    for text in (attack, f"dict(net_arch=[64], activation_fn={attack})", "open('x')", "dict(**x)", "nn.Sigmoid"):
        with pytest.raises(ConfigError):
            read_code_value(text)
    taken, dropped = translate("ppo", {"policy_kwargs": attack, "gamma": 0.9})
    assert taken == {"gamma": 0.9} and dropped[0].key == "policy_kwargs" and "never run" in dropped[0].reason
    taken, dropped = translate("ppo", {"policy_kwargs": f"dict(net_arch=[64], activation_fn={attack})"})
    assert taken == {"policy_kwargs": {"net_arch": [64]}}  # what could be read is kept, key by key
    assert [d.key for d in dropped] == ["policy_kwargs.activation_fn"] and "dict(...)" in dropped[0].reason
    assert not marker.exists()


def test_a_linear_schedule_is_dropped_with_what_applies_instead():
    env_id, entry = next((k, v) for k, v in zoo_yml("sac").items() if str(v.get("learning_rate")).startswith("lin_"))
    published = published_settings("rl-zoo3", "sac", f"gym:{env_id}")
    _accounted_for(published, entry)
    (note,) = [d for d in published.dropped if d.key == "learning_rate"]
    assert note.value == entry["learning_rate"] and "linear schedule" in note.reason and "SB3's default" in note.reason


def test_another_version_of_the_id_is_used_and_said_and_a_missing_one_lists_the_entries():
    published = published_settings("rl-zoo3", "sac", "gym:HalfCheetah-v5")
    assert published.entry == "HalfCheetah-v4" and "no HalfCheetah-v5" in published.note
    _accounted_for(published, zoo_yml("sac")["HalfCheetah-v4"])
    with pytest.raises(UnknownNameError) as info:
        published_settings("rl-zoo3", "ppo", "gym:Pusher-v5")
    message = str(info.value)
    assert "no entry for Pusher-v5 in ppo.yml" in message and "remove settings_from" in message
    assert all(env_id in message for env_id in zoo_yml("ppo") if env_id not in ("default", "atari"))
    with pytest.raises(UnknownNameError, match="not a gym: task"):
        published_settings("rl-zoo3", "ppo", "dmc:cartpole-swingup")


def test_without_rl_zoo3_the_error_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "rl_zoo3", None)  # Python's own way to make a package unimportable
    with pytest.raises(MissingDependencyError) as info:
        published_settings("rl-zoo3", "ppo", "gym:Pendulum-v1")
    assert INSTALL in str(info.value) and len(str(info.value).splitlines()) == 1
