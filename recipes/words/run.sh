#!/bin/sh
# words recipe: see README.md in this folder. Extra arguments go to the command
# (e.g. --quick for a small run, -j 2 for two worker processes, --no-hmmlearn).
set -eu
cd "$(dirname "$0")/../.."
GMMSPEECH=${GMMSPEECH:-.venv/bin/gmmspeech}
DATA_ROOT=${DATA_ROOT:-../shared/datasets}
exec "$GMMSPEECH" recipe words --data-root "$DATA_ROOT" --out "${OUT:-exp/words}" "$@"
