#!/usr/bin/env bash
# Install era-harness with its test dependencies and run the test suite (CI runs exactly this).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup_env.sh test
export MUJOCO_GL="${MUJOCO_GL:-disable}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# HumanoidBench is not on PyPI. Where an unmodified copy sits beside the project (as on CI), or
# ERA_HUMANOIDBENCH_DIR names one, the tests import it from PYTHONPATH; without one they skip.
HB_DIR="${ERA_HUMANOIDBENCH_DIR:-$ROOT/../shared/vendor/humanoid-bench}"
if [ -d "$HB_DIR/humanoid_bench" ]; then
    export PYTHONPATH="$(cd "$HB_DIR" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
    echo "HumanoidBench tests use $(cd "$HB_DIR" && pwd)" >&2
fi
set +e
python -m pytest -m "not slow and not gpu" --durations=15 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
