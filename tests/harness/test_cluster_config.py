"""cluster.yaml must pass Ray's own cluster-launcher validation (offline, docs/harness.md) and
set up what era-harness needs on every node."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_with_rays_validator(config):
    _validate(config)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "GPU" not in head["resources"] and head["max_workers"] == 0
    gpu_workers = [t for name, t in types.items() if "GPU" in t["resources"]]
    assert gpu_workers and all(t["max_workers"] > t["min_workers"] for t in gpu_workers)  # autoscaling


def test_every_node_installs_the_project_with_era_on_the_path(config):
    setup = config["setup_commands"]  # setup_commands run on the head and on every worker
    assert config["file_mounts"]["~/era-harness"] == "."
    assert any("pip install" in c and "-e ~/era-harness" in c for c in setup)  # pyproject's pinned deps
    assert any("era-venv/bin" in c and ".bashrc" in c for c in setup)
    assert setup[-1].endswith("era --version")  # a broken install fails `ray up`, not the first job
    for command in config["head_start_ray_commands"][-1:] + config["worker_start_ray_commands"][-1:]:
        # the raylet's PATH is what a job's entrypoint (`era run ...`) runs with
        assert command.startswith('export PATH="$HOME/era-venv/bin:$PATH"') and "ray start" in command
    assert {"**/.venv", "**/.git"} <= set(config["rsync_exclude"])


def test_gpu_workers_can_write_the_storage_bucket(config):
    # Ray gives the head a role with S3 access but workers none, and trials checkpoint from the workers
    for node_type in config["available_node_types"].values():
        if "GPU" in node_type["resources"]:
            assert node_type["node_config"]["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::")
    text = (ROOT / "cluster.yaml").read_text()
    assert "--storage s3://BUCKET" in text and "EDIT" in text


@pytest.mark.parametrize("break_it, message", [
    (lambda c: c.update(head_node_type="no_such_type"), "head_node_type"),
    (lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(CPU="eight"), "not of type 'integer'"),
    (lambda c: c["available_node_types"]["gpu_worker"].pop("resources"), "'resources' is a required property"),
    (lambda c: c["provider"].update(type="no-such-cloud"), "Unsupported node provider"),
], ids=["head_node_type", "cpu_not_a_number", "no_resources", "provider"])
def test_validator_rejects_a_broken_cluster_yaml(config, break_it, message):
    broken = copy.deepcopy(config)
    break_it(broken)
    with pytest.raises(Exception, match=message):
        _validate(broken)
