#!/usr/bin/env bash
# Install HumanoidBench, which is not on PyPI, the one way that works: an editable install of a
# clone at the commit era-harness was verified with, without HumanoidBench's own dependencies.
#
#   bash scripts/install_humanoidbench.sh [DIR]    # clone into DIR (default: .deps/humanoid-bench)
#
# Why not `pip install git+...`: upstream has no MANIFEST.in and two sub-packages without an
# __init__.py, so its wheel lacks the robot and task assets and `import humanoid_bench` fails.
# Why --no-deps: upstream's setup.py pins gymnasium 0.29.1, mujoco 3.1.6, dm_control 1.0.20,
# torch 2.3.1 and jax/brax, which would replace era-harness's pins; era-harness runs HumanoidBench
# on its own pins through a small compatibility layer (adapters/rl/humanoidbench.py).
#
# Settings (environment variables): PYTHON (default: .venv/bin/python if it exists, else python3),
# HUMANOIDBENCH_REPO (default: upstream), HUMANOIDBENCH_COMMIT (default: the verified commit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="${HUMANOIDBENCH_REPO:-https://github.com/carlosferrazza/humanoid-bench.git}"
COMMIT="${HUMANOIDBENCH_COMMIT:-791405f}"
DEST="${1:-$ROOT/.deps/humanoid-bench}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

if [ -d "$DEST/.git" ]; then
    echo "using the clone in $DEST" >&2
    git -C "$DEST" fetch --quiet origin || echo "warning: could not fetch $REPO; using the clone as it is" >&2
else
    echo "cloning $REPO into $DEST" >&2
    mkdir -p "$(dirname "$DEST")"
    git clone --quiet "$REPO" "$DEST"
fi
git -C "$DEST" -c advice.detachedHead=false checkout --quiet "$COMMIT"
echo "installing HumanoidBench $(git -C "$DEST" rev-parse --short HEAD) into $("$PYTHON" -c 'import sys; print(sys.prefix)') (editable, --no-deps)" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps -e "$DEST"
"$PYTHON" - "$DEST" <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("humanoid_bench")
dest = pathlib.Path(sys.argv[1]).resolve()
if spec is None or dest not in pathlib.Path(spec.origin).resolve().parents:
    sys.exit(f"error: humanoid_bench is not importable from {dest} after the install")
print(f"HumanoidBench installed from {dest}")
PY
