#!/usr/bin/env bash
# The trainer's checks, as CI runs them: Python 3.8 syntax (vermin), then the pytest suite
# in three venvs, each created by scripts/trainer-venv.sh when missing:
#   tf27   CPython 3.8 + TensorFlow 2.7.0 / Keras 2.7 (the NVIDIA TensorFlow 22.02 container's)
#   tf215  TensorFlow 2.15 / Keras 2
#   tfcur  current TensorFlow / Keras 3
#
#   scripts/test-trainer.sh            # all three
#   TRAINER_VENVS=tf215 scripts/test-trainer.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=2
export CUDA_VISIBLE_DEVICES=""

venvs=${TRAINER_VENVS:-tf27 tf215 tfcur}

for name in $venvs; do
    scripts/trainer-venv.sh "$name"
done

first=${venvs%% *}
echo "== vermin: trainer/ must run on Python 3.8"
"$root/.venv-$first/bin/vermin" -t=3.8- --no-tips --violations --eval-annotations trainer/

status=0
summary=()
for name in $venvs; do
    echo "== pytest trainer/tests with .venv-$name"
    start=$(date +%s)
    log=$(mktemp)
    rc=0
    "$root/.venv-$name/bin/python" -m pytest -q -p no:cacheprovider trainer/tests 2>&1 | tee "$log" || rc=$?
    # pytest's last line: "27 passed in 253.26s" or "1 failed, 26 passed in ...".
    result=$(tail -n 1 "$log" | sed -E 's/^=+ //; s/ =+$//')
    rm -f "$log"
    versions=$("$root/.venv-$name/bin/python" -c \
        'import sys, tensorflow as tf; print("Python %d.%d.%d, TF %s" % (sys.version_info[:3] + (tf.__version__,)))' 2>/dev/null || echo "?")
    [ "$rc" = 0 ] || status=1
    summary+=("$(printf '.venv-%-6s %-28s %s (%ss)' "$name" "($versions)" "$result" "$(( $(date +%s) - start ))")")
done
echo "== trainer suite per venv"
printf '%s\n' "${summary[@]}"
exit $status
