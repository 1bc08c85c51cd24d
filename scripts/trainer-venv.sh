#!/usr/bin/env bash
# Create (idempotently) the virtual environment <repo>/.venv-NAME with a given TensorFlow,
# for the trainer's tests.
#
#   scripts/trainer-venv.sh NAME [TF_SPEC [PIN...]]
#   scripts/trainer-venv.sh tf27     # Python 3.8 + tensorflow-cpu 2.7.0 (the NVIDIA 22.02 container's)
#   scripts/trainer-venv.sh tf215    # tensorflow-cpu 2.15 (Keras 2)
#   scripts/trainer-venv.sh tfcur    # current tensorflow-cpu (Keras 3)
#   scripts/trainer-venv.sh mine 'tensorflow-cpu==2.12.*' 'numpy<1.24'
#
# tf27, tf215 and tfcur are known names: their TF_SPEC, pins and Python come from the table
# below unless given. tf27 is the published container's versions: CPython 3.8, found through
# pyenv ($(pyenv root)/versions/3.8.*, else ~/.pyenv/versions/3.8.*); PYTHON overrides the
# interpreter for every name (default python3). TensorFlow 2.7 needs older neighbours, pinned
# here: numpy<1.22, protobuf<3.20 and wrapt<1.15 (newer ones break it at import or later).
#
# A venv is reused when its stamp file records the same specs (and, for pinned ones, the same
# Python) and its TensorFlow imports.
set -euo pipefail

usage() {
    echo "usage: $0 NAME [TF_SPEC [PIN...]]   (known NAMEs: tf27, tf215, tfcur)" >&2
    exit 2
}
[ $# -ge 1 ] || usage
name=$1
shift

# Known venvs: TF_SPEC, extra pins, and the Python minor version they need ("" = python3).
want_python=""
pins=()
case $name in
tf27)
    tf_spec='tensorflow-cpu==2.7.0'
    pins=('numpy==1.21.6' 'protobuf==3.19.6' 'wrapt==1.13.3')
    want_python=3.8
    ;;
tf215) tf_spec='tensorflow-cpu==2.15.*' ;;
tfcur) tf_spec='tensorflow-cpu' ;;
*) [ $# -ge 1 ] || usage ;;
esac
if [ $# -ge 1 ]; then
    tf_spec=$1
    shift
    pins=("$@")
fi

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-$name"
stamp="$venv/.hpctl-trainer-venv"

# find_pyenv_python MINOR: the newest pyenv-built CPython MINOR.x interpreter, or nothing.
find_pyenv_python() {
    local minor=$1 dirs=() d best=""
    if command -v pyenv >/dev/null 2>&1; then
        dirs+=("$(pyenv root)/versions")
    fi
    dirs+=("${PYENV_ROOT:-$HOME/.pyenv}/versions")
    for d in "${dirs[@]}"; do
        # Version-sorted, so 3.8.18 wins over 3.8.9.
        best=$(find "$d" -maxdepth 1 -name "$minor.*" -printf '%f\n' 2>/dev/null |
            grep -E "^${minor//./\\.}\.[0-9]+$" | sort -V | tail -n 1) || true
        if [ -n "$best" ] && [ -x "$d/$best/bin/python3" ]; then
            echo "$d/$best/bin/python3"
            return 0
        fi
    done
    return 1
}

if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif [ -n "$want_python" ]; then
    if ! python=$(find_pyenv_python "$want_python"); then
        cat >&2 <<EOF
trainer-venv: .venv-$name needs CPython $want_python (the NVIDIA TensorFlow 22.02 container's
Python), and none was found: no \$(pyenv root)/versions/$want_python.* nor
${PYENV_ROOT:-$HOME/.pyenv}/versions/$want_python.*. Get one with pyenv:
    pyenv install $want_python.18
or point PYTHON at a Python $want_python interpreter: PYTHON=/path/to/python3.8 $0 $name
EOF
        exit 1
    fi
else
    python=python3
fi
if ! py_version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); then
    echo "trainer-venv: cannot run $python" >&2
    exit 1
fi
if [ -n "$want_python" ] && [ "${py_version%.*}" != "$want_python" ]; then
    echo "trainer-venv: .venv-$name needs Python $want_python; $python is $py_version" >&2
    exit 1
fi

# The pins go into the same pip call as TensorFlow so that the resolver honours them.
packages=("$tf_spec" "${pins[@]}" pytest pillow numpy scipy vermin)
# tf215 and tfcur keep the stamp they always had (their TF_SPEC alone), so that existing
# venvs are not rebuilt; a pinned or Python-specific venv records all of it.
want_stamp=$tf_spec
if [ ${#pins[@]} -gt 0 ] || [ -n "$want_python" ]; then
    want_stamp="python $py_version: ${packages[*]}"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] &&
    TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" -c 'import tensorflow' >/dev/null 2>&1; then
    echo "trainer-venv: $venv is ready ($want_stamp)"
    exit 0
fi

echo "trainer-venv: creating $venv with Python $py_version ($python): ${packages[*]}" >&2
start=$(date +%s)
rm -f "$stamp"
# A venv made by another interpreter (or an older stamp) is rebuilt from scratch.
if [ -x "$venv/bin/python" ] &&
    [ "$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" != "$py_version" ]; then
    echo "trainer-venv: $venv has another Python; recreating it" >&2
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    # Debian's python3 keeps venv (ensurepip) in a package of its own.
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        if [ "$python" = python3 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
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
    'import sys, tensorflow as tf; print("trainer-venv: Python %d.%d.%d, tensorflow %s" % (sys.version_info[:3] + (tf.__version__,)))'
printf '%s' "$want_stamp" > "$stamp"
echo "trainer-venv: $venv created in $(( $(date +%s) - start ))s" >&2
