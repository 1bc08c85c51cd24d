#!/usr/bin/env bash
# The quickstart, `make demo`: from a fresh clone with Go and Python 3 to a trained
# two-stage pipeline and its results, on this machine, with no scheduler:
#   1. build bin/hpctl
#   2. a Python with TensorFlow: $HPCTL_PYTHON when set (it must import tensorflow),
#      else the venv .venv-tfcur with the CPU build (scripts/trainer-venv.sh; reused once made)
#   3. the demo data set in demo-data/ (scripts/make-demo-data.py)
#   4. hpctl submit configs/demo.yaml (executor: local), then hpctl status --watch until
#      both stages ended (exit 5 if the run failed, after printing the failing job's log)
#   5. hpctl fetch-results: the summary, and the paths of the plot and the report
# configs/demo.yaml runs `python3`: this script puts the chosen interpreter first on PATH,
# and the local executor's jobs inherit the environment of `hpctl submit`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2

step() { printf '\n== %s\n' "$*"; }

step "build bin/hpctl"
make --no-print-directory build

step "Python with TensorFlow"
if [ -n "${HPCTL_PYTHON:-}" ]; then
    # A one-line wrapper rather than a symlink: a venv's python finds its packages from
    # the path it was started by, which a symlink elsewhere would change.
    shim=.work/demo-python
    mkdir -p "$shim"
    printf '#!/bin/sh\nexec %q "$@"\n' "$HPCTL_PYTHON" >"$shim/python3"
    chmod +x "$shim/python3"
    pybin=$PWD/$shim
else
    scripts/trainer-venv.sh tfcur 'tensorflow-cpu'   # the same venv as make test's Keras 3 suite
    pybin=$PWD/.venv-tfcur/bin
fi
export PATH="$pybin:$PATH"
if ! python3 -c 'import tensorflow, numpy, PIL' >/dev/null 2>&1; then
    echo "demo: $(command -v python3) cannot import tensorflow, numpy and PIL; unset HPCTL_PYTHON to let make demo create a venv" >&2
    exit 2
fi
echo "python: $(command -v python3)"

step "demo data"
python3 scripts/make-demo-data.py demo-data

step "hpctl submit configs/demo.yaml"
out=$(bin/hpctl submit configs/demo.yaml)
echo "$out"
run=$(sed -n 's/^submitted run \([^ ]*\).*/\1/p' <<<"$out")
if [ -z "$run" ]; then
    echo "demo: could not read the run id from hpctl submit" >&2
    exit 1
fi

step "hpctl status $run --watch"
code=0
bin/hpctl status "$run" --watch --interval 2s || code=$?
if [ "$code" -ne 0 ]; then
    for stage in frozen finetune; do
        echo "-- $stage: stderr (hpctl logs $run --stage $stage --err)" >&2
        bin/hpctl logs "$run" --stage "$stage" --err 2>&1 | tail -n 30 >&2 || true
    done
    exit "$code"
fi

step "hpctl fetch-results $run"
bin/hpctl fetch-results "$run"
