# hpctl developer tasks. Each target is a thin call into scripts/ or the Go tool.

.PHONY: build dist test demo slurm-up slurm-up-noacct slurm-up-2nodes slurm-down-2nodes slurm-down sshd-up sshd-down containers-up

COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# What `make dist` builds; scripts/test.sh cross-compiles (go vet) the same list.
DIST_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

build:             ## bin/hpctl, with version and commit stamped in
	go build -ldflags "$(LDFLAGS)" -o bin/hpctl ./cmd/hpctl

dist:              ## dist/hpctl_<os>_<arch> for Linux and macOS (amd64, arm64) and dist/SHA256SUMS
	rm -rf dist && mkdir -p dist
	for t in $(DIST_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "dist/hpctl_$${os}_$${arch}"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" \
			-o "dist/hpctl_$${os}_$${arch}" ./cmd/hpctl || exit 1; \
	done
	cd dist && { sha256sum hpctl_* 2>/dev/null || shasum -a 256 hpctl_*; } > SHA256SUMS
	cat dist/SHA256SUMS

test:              ## the whole suite as CI runs it: starts Slurm, sshd, TensorFlow venvs first
	scripts/test.sh

demo:              ## the quickstart: build, TensorFlow venv (or $$HPCTL_PYTHON), demo data, train locally, results
	scripts/demo.sh

## Test infrastructure (root, Debian 12; see docs/test-cluster.md)

slurm-up:          ## single-node Slurm cluster with accounting (slurmdbd + MariaDB)
	scripts/slurm-up.sh

slurm-up-noacct:   ## the same cluster without slurmdbd: sacct fails, as on many sites
	scripts/slurm-up.sh --no-accounting

slurm-up-2nodes:   ## a second, separate Slurm cluster: nodes n1 and n2 on this host (SLURM_CONF=/etc/slurm-2nodes/slurm.conf)
	scripts/slurm-up-2nodes.sh

slurm-down-2nodes: ## stop the two-node cluster
	scripts/slurm-up-2nodes.sh --down

slurm-down:        ## stop the cluster (scripts/slurm-down.sh --purge also resets its state)
	scripts/slurm-down.sh

sshd-up:           ## OpenSSH server on 127.0.0.1:2222 with a throwaway key
	scripts/sshd-up.sh

sshd-down:         ## stop that sshd
	scripts/sshd-down.sh

containers-up:     ## podman (rootful, rootless), dockerd and the trainer's image for the real-runtime tests
	scripts/containers-up.sh
