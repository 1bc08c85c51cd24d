#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`make test`). On a fresh Debian 12 machine,
# as root, it installs and starts what the tests need, then runs them:
#   - system packages: shellcheck, rsync, zsh and fish (the completion test loads hpctl's
#     scripts in them), jq and less (help examples pipe into them; e2e/examples_test.go
#     runs every one); the cluster and sshd scripts install their own
#   - a real single-node Slurm cluster with accounting (scripts/slurm-up.sh)
#   - a second, two-node Slurm cluster on the same host (scripts/slurm-up-2nodes.sh)
#   - a real OpenSSH server on 127.0.0.1:2222 (scripts/sshd-up.sh)
#   - podman (rootful and rootless), dockerd and the trainer's image built without a
#     registry (scripts/containers-up.sh)
#   - TensorFlow virtual environments: 2.7 on CPython 3.8 (the NVIDIA 22.02 container's;
#     the interpreter comes from pyenv), 2.15 (Keras 2) and current (Keras 3)
# then gofmt, go vet (also cross-compiled for macOS and arm64), staticcheck, go test ./...
# (integration tests must run: no skips), the end-to-end test once more on TF 2.7, a
# bounded fuzz run of the spec loader and of the results readers, and the trainer's
# suite on all three TensorFlows.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export TF_CPP_MIN_LOG_LEVEL=2

step() { printf '\n== %s\n' "$*"; }

step "system packages"
need=()
for tool in shellcheck rsync zsh fish jq less; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "Slurm test cluster"
scripts/slurm-up.sh
step "two-node Slurm test cluster (a separate instance, for slurm.nodes > 1)"
scripts/slurm-up-2nodes.sh
step "sshd on 127.0.0.1"
scripts/sshd-up.sh
step "container runtimes: podman (rootful, rootless), dockerd, the trainer's image"
# The image's root file system is built once (about 2 minutes) and cached in
# /var/cache/hpctl-test; later runs only import it where it is missing.
scripts/containers-up.sh

step "TensorFlow environments"
scripts/trainer-venv.sh tf27
scripts/trainer-venv.sh tf215
scripts/trainer-venv.sh tfcur

step "gofmt, go vet, staticcheck"
mapfile -t gofiles < <(git ls-files '*.go')
unformatted=$(gofmt -l "${gofiles[@]}")
if [ -n "$unformatted" ]; then
    echo "gofmt would change:" >&2
    echo "$unformatted" >&2
    exit 1
fi
go vet ./...
# hpctl ships for these too (make dist; linux/amd64 is the line above): vet compiles every
# package and its tests for each (darwin compiles jobs/local's non-Linux fallback). About a
# minute each on two cores with a cold build cache.
for target in linux/arm64 darwin/amd64 darwin/arm64; do
    echo "go vet for $target"
    GOOS=${target%/*} GOARCH=${target#*/} CGO_ENABLED=0 go vet ./...
done
GOBIN="$PWD/bin/tools" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
bin/tools/staticcheck ./...

step "go test ./..."
# The integration tests skip without a cluster, an sshd or TensorFlow unless told that
# they must run: here they must.
export HPCTL_REQUIRE_SLURM=1 HPCTL_REQUIRE_SLURM2=1 HPCTL_REQUIRE_SSH=1 HPCTL_REQUIRE_TOOLS=1 HPCTL_REQUIRE_TF=1
export HPCTL_REQUIRE_CONTAINERS=1
export HPCTL_TEST_PYTHON="$PWD/.venv-tfcur/bin/python"
go test -p 1 -timeout 30m ./...

step "end-to-end test on TensorFlow 2.7 / Python 3.8 (the NVIDIA 22.02 container's)"
HPCTL_TEST_PYTHON="$PWD/.venv-tf27/bin/python" go test -count=1 -timeout 20m -run '^TestPipelineEndToEnd$' ./e2e

step "fuzz the spec loader and the results readers (bounded)"
go test ./experiment -run '^$' -fuzz FuzzParse -fuzztime "${HPCTL_FUZZTIME:-20s}" -fuzzminimizetime 5s
# history.csv, metrics.json and evaluation.json as a diverged or damaged run leaves them
# (nan, inf, 1e308, ragged rows, binary): one -fuzz target per go test run.
go test ./pipeline/results -run '^$' -fuzz '^FuzzReadHistory$' -fuzztime "${HPCTL_FUZZTIME_READERS:-15s}"
go test ./pipeline/results -run '^$' -fuzz '^FuzzReadMetrics$' -fuzztime "${HPCTL_FUZZTIME_READERS:-15s}"

step "trainer: Python 3.8 syntax and pytest on TensorFlow 2.7, 2.15 and current"
scripts/test-trainer.sh
