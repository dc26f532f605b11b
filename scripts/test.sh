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
# TD-MPC2 is not on PyPI either: its tdmpc2/ source folder, where one sits beside the project or
# ERA_TDMPC2_DIR names one, is where the TD-MPC2 tests take it from; without one they skip.
TDMPC2_DIR="${ERA_TDMPC2_DIR:-$ROOT/../shared/vendor/tdmpc2/tdmpc2}"
if [ -f "$TDMPC2_DIR/tdmpc2.py" ]; then
    export ERA_TDMPC2_DIR="$(cd "$TDMPC2_DIR" && pwd)"
    echo "TD-MPC2 tests use $ERA_TDMPC2_DIR" >&2
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
