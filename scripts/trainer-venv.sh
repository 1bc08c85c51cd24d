#!/usr/bin/env bash
# Create (idempotently) the virtual environment /work/main/.venv-NAME -- or, generally,
# <repo>/.venv-NAME -- with a given TensorFlow, for the trainer's tests.
#
#   scripts/trainer-venv.sh NAME TF_SPEC
#   scripts/trainer-venv.sh tf215 'tensorflow-cpu==2.15.*'   # Keras 2
#   scripts/trainer-venv.sh tfcur 'tensorflow-cpu'           # current TF, Keras 3
#
# A venv is reused when its stamp file records the same TF_SPEC and its TensorFlow imports.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 NAME TF_SPEC" >&2
    exit 2
fi
name=$1
tf_spec=$2
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-$name"
stamp="$venv/.hpctl-trainer-venv"
python=${PYTHON:-python3}
packages=("$tf_spec" pytest pillow numpy scipy vermin)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$tf_spec" ] &&
    TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" -c 'import tensorflow' >/dev/null 2>&1; then
    echo "trainer-venv: $venv is ready ($tf_spec)"
    exit 0
fi

echo "trainer-venv: creating $venv with $tf_spec" >&2
rm -f "$stamp"
if [ ! -x "$venv/bin/python" ]; then
    # Debian's python3 keeps venv (ensurepip) in a package of its own.
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "trainer-venv: installing python3-venv (Debian ships venv apart from python3)" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null ||
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
        else
            echo "trainer-venv: $python has no venv module; install python3-venv (Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" -c \
    'import tensorflow as tf; print("trainer-venv: tensorflow", tf.__version__)'
printf '%s' "$tf_spec" > "$stamp"
