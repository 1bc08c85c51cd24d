#!/usr/bin/env bash
# The trainer's checks, as CI runs them: Python 3.8 syntax (vermin), then the pytest suite
# in a TensorFlow 2.15 (Keras 2) venv and in a current TensorFlow (Keras 3) venv, each
# created by scripts/trainer-venv.sh when missing.
#
#   scripts/test-trainer.sh            # both
#   TRAINER_VENVS=tf215 scripts/test-trainer.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=2
export CUDA_VISIBLE_DEVICES=""

declare -A specs=([tf215]='tensorflow-cpu==2.15.*' [tfcur]='tensorflow-cpu')
venvs=${TRAINER_VENVS:-tf215 tfcur}

for name in $venvs; do
    scripts/trainer-venv.sh "$name" "${specs[$name]}"
done

first=${venvs%% *}
echo "== vermin: trainer/ must run on Python 3.8"
"$root/.venv-$first/bin/vermin" -t=3.8- --no-tips --violations --eval-annotations trainer/

status=0
for name in $venvs; do
    echo "== pytest trainer/tests with .venv-$name"
    start=$(date +%s)
    if ! "$root/.venv-$name/bin/python" -m pytest -q -p no:cacheprovider trainer/tests; then
        status=1
    fi
    echo "== .venv-$name: $(( $(date +%s) - start ))s"
done
exit $status
