#!/usr/bin/env bash
# Install TD-MPC2, which is not on PyPI and is not a package: clone its repository at the commit
# era-harness was verified with, and install the Python packages it needs on era-harness's pins.
#
#   bash scripts/install_tdmpc2.sh [DIR]    # clone into DIR (default: .deps/tdmpc2)
#
# The TD-MPC2 family finds the clone's tdmpc2/ source folder at .deps/tdmpc2/tdmpc2, or wherever
# ERA_TDMPC2_DIR points (set it when you clone elsewhere; Ray workers inherit it from `era run`).
# Upstream's own environment pins torch 2.7.1, tensordict 0.8.3 and torchrl 0.8.1; on torch 2.14
# the tdmpc2 extra's tensordict 0.12.4 / torchrl 0.12.0 are what works (see pyproject.toml).
#
# Settings (environment variables): PYTHON (default: .venv/bin/python if it exists, else python3),
# TDMPC2_REPO (default: upstream), TDMPC2_COMMIT (default: the verified commit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="${TDMPC2_REPO:-https://github.com/nicklashansen/tdmpc2.git}"
COMMIT="${TDMPC2_COMMIT:-e9f5932}"
DEST="${1:-$ROOT/.deps/tdmpc2}"
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
echo "installing the tdmpc2 extra into $("$PYTHON" -c 'import sys; print(sys.prefix)')" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e "$ROOT[tdmpc2]"
SOURCE="$(cd "$DEST/tdmpc2" && pwd)"
MUJOCO_GL="${MUJOCO_GL:-disable}" ERA_TDMPC2_DIR="$SOURCE" "$PYTHON" -c 'from adapters.tdmpc2.upstream import import_upstream; import_upstream()' \
    || { echo "error: TD-MPC2 in $SOURCE does not import" >&2; exit 1; }
if [ "$SOURCE" != "$(cd "$ROOT" && pwd)/.deps/tdmpc2/tdmpc2" ]; then
    echo "TD-MPC2 installed in $SOURCE: export ERA_TDMPC2_DIR=$SOURCE before era run / era trial"
else
    echo "TD-MPC2 installed in $SOURCE"
fi
