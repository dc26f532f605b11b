#!/usr/bin/env bash
# Create .venv with Python 3.11 and install era-harness into it (idempotent: re-installs only when
# pyproject.toml changed). Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ERA_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
EXTRAS="${1:-}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found: install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.install-stamp${EXTRAS:+-$EXTRAS}"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing era-harness${EXTRAS:+[$EXTRAS]} and its pinned dependencies (first time: a few minutes)" >&2
    # (sed drops pip's warnings about package folders this machine's pip config names but lacks)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${EXTRAS:+[$EXTRAS]}" 2>&1 \
        | sed '/is ignored: it is neither a file nor a directory/d' >&2
    if [ "$EXTRAS" = "test" ]; then
        # rl-zoo3's hyperparameter files, without its dependencies (see pyproject.toml)
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "rl-zoo3==2.9.2" 2>&1 \
            | sed '/is ignored: it is neither a file nor a directory/d' >&2
    fi
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
