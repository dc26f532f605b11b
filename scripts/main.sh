#!/usr/bin/env bash
# Install era-harness and run the main job: the smoke suite (ERA vs baselines, RL and vision, tiny
# budgets) on an embedded local Ray, ending in a report under reports/smoke/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-disable}"
era run suites/smoke.yaml "$@"
