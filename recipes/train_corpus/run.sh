#!/bin/sh
# train_corpus recipe: see README.md in this folder. Extra arguments go to the command
# (e.g. --quick for a small run, -j 2 for two worker processes).
set -eu
cd "$(dirname "$0")/../.."
GMMSPEECH=${GMMSPEECH:-.venv/bin/gmmspeech}
DATA_ROOT=${DATA_ROOT:-../shared/datasets}
exec "$GMMSPEECH" recipe train_corpus --data-root "$DATA_ROOT" --manifest "${MANIFEST:-data_manifests/librispeech/background.csv}" --out "${OUT:-exp/train_corpus}" "$@"
