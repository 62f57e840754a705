#!/bin/sh
# score_files recipe: see README.md in this folder.
# usage: recipes/score_files/run.sh [MODELS_DIR [INPUT_DIR_OR_MANIFEST]] [extra options]
# Without arguments it scores the demo's audio against the demo's models (running the
# demo first when demo-out/ does not exist yet).
set -eu
cd "$(dirname "$0")/../.."
GMMSPEECH=${GMMSPEECH:-.venv/bin/gmmspeech}
if [ $# -ge 2 ]; then
    MODELS=$1; INPUT=$2; shift 2
else
    MODELS=demo-out/models; INPUT=demo-out/audio
    [ -d "$MODELS" ] || "$GMMSPEECH" demo --out demo-out --quiet
fi
exec "$GMMSPEECH" recipe score_files --models "$MODELS" --input "$INPUT" --out "${OUT:-exp/score_files}" "$@"
