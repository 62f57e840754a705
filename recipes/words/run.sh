#!/bin/sh
# words recipe: see README.md in this folder and run.py (the stages). Extra arguments go to
# run.py (e.g. --quick for a small run, -j 2 for two worker processes, --no-hmmlearn,
# --stage N --stop-stage N).
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
DATA_ROOT=${DATA_ROOT:-../shared/datasets}
exec "$PYTHON" recipes/words/run.py --data-root "$DATA_ROOT" --out "${OUT:-exp/words}" "$@"
