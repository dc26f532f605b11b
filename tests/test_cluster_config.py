"""cluster.yaml must pass Ray's own cluster-launcher validation (offline)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_cluster_yaml_validates_with_rays_validator():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    _validate(config)
    types = config["available_node_types"]
    assert "GPU" in types["gpu_worker"]["resources"]
    assert types["gpu_worker"]["max_workers"] > types["gpu_worker"]["min_workers"]
    assert any("pip install" in c and "era-harness" in c for c in config["setup_commands"])


def test_validator_rejects_a_broken_cluster_yaml():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["head_node_type"] = "no_such_type"
    with pytest.raises(Exception):
        _validate(config)
