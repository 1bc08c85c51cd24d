#!/usr/bin/env bash
# Make the container runtimes of the real-runtime tests ready on a Debian 12 machine, as
# root, without a registry (docs/test-cluster.md, "Container runtimes"):
#
#   scripts/containers-up.sh            build or reuse the image, configure podman, start dockerd
#   scripts/containers-up.sh --no-docker   everything but dockerd
#
# - The trainer's image is a Debian root file system (debootstrap minbase + python3) with a
#   venv holding current tensorflow-cpu, imported with `podman import` / `docker import` as
#   $HPCTL_CONTAINER_IMAGE (default localhost/hpctl-trainer:test). The tar is cached under
#   $HPCTL_CONTAINER_CACHE (default /var/cache/hpctl-test), keyed by the recipe below, so
#   it is built once (minutes) and imported in seconds after that.
# - podman's machine quirks live here, not in hpctl: root lacks CAP_SYS_RESOURCE in this
#   sandbox (crun's setrlimit fails: default_ulimits), crun does not support the hybrid
#   cgroup setup (runtime = "runc"), and /dev/net/tun is 0600 so rootless slirp4netns fails
#   (netns = "host" for the rootless user).
# - Rootless podman runs as user $HPCTL_ROOTLESS_USER (default hpctlrl), created with
#   subuid/subgid ranges and its own copy of the image.
# - dockerd (Debian's docker.io) is started on the default socket with no bridge network
#   (there is none here: containers run with --network host), log in $STATE/dockerd.log.
#
# Idempotent: run it again whenever you like.
set -euo pipefail

cache=${HPCTL_CONTAINER_CACHE:-/var/cache/hpctl-test}
image=${HPCTL_CONTAINER_IMAGE:-localhost/hpctl-trainer:test}
rl_user=${HPCTL_ROOTLESS_USER:-hpctlrl}
state=${HPCTL_CONTAINER_STATE:-/var/lib/hpctl-containers}
suite=bookworm
mirror=${HPCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debs=python3,python3-venv,ca-certificates,procps
pips="tensorflow-cpu pillow"
docker=1
[[ ${1:-} == --no-docker ]] && docker=0

[[ $(id -u) == 0 ]] || { echo "$0: run as root" >&2; exit 1; }
mkdir -p "$cache" "$state"

log() { printf '%s containers-up: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Packages, installed only when missing (apt-get update once).
need=()
for p in podman:podman runc:runc newuidmap:uidmap debootstrap:debootstrap dockerd:docker.io; do
	command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# podman, root: ulimits and runc (a drop-in, so the packaged containers.conf stays).
conf='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"'
mkdir -p /etc/containers/containers.conf.d
printf '%s\n' "$conf" >/etc/containers/containers.conf.d/50-hpctl-test.conf

# The image: build the root file system once per recipe.
key=$(printf '%s\n' "$suite" "$debs" "$pips" 2 | sha256sum | cut -c1-16)
tarball=$cache/rootfs-$key.tar
if [[ ! -s $tarball ]]; then
	start=$SECONDS
	root=$(mktemp -d "$cache/rootfs.XXXXXX")
	trap 'umount -l "$root/proc" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
	log "debootstrap $suite into $root"
	debootstrap --variant=minbase --include="$debs" "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/debootstrap.log" >&2; exit 1; }
	# pip reaches the index through this network's proxy only with the host's CA bundle.
	cp /usr/local/share/ca-certificates/* "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	mount -t proc proc "$root/proc"
	chroot "$root" update-ca-certificates >/dev/null
	log "venv with $pips"
	# shellcheck disable=SC2086 # pips is a list of package names written above
	chroot "$root" sh -c "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-cache-dir $pips"
	# python3 in the container is the venv's, as the spec's container.python says.
	printf '#!/bin/sh\nexec /opt/venv/bin/python3 "$@"\n' >"$root/usr/local/bin/python3"
	chmod 755 "$root/usr/local/bin/python3"
	umount "$root/proc"
	chroot "$root" /opt/venv/bin/python3 -c 'import tensorflow as tf; print("tensorflow", tf.__version__)' >&2
	tar -C "$root" -cf "$tarball.tmp" .
	mv -f "$tarball.tmp" "$tarball"
	rm -rf --one-file-system "$root"
	trap - EXIT
	log "image root file system built in $((SECONDS - start)) s: $tarball"
fi
chmod 644 "$tarball"

# import_if_stale CMD...: import the tarball with CMD (podman, docker, su ... podman) unless
# the image carries this recipe's key already.
import_if_stale() {
	local have
	have=$("$@" image inspect --format '{{index .Config.Labels "hpctl.key"}}' "$image" 2>/dev/null || true)
	# podman import keeps no labels from --change LABEL in every version: check the tag too.
	if [[ $have == "$key" ]] || "$@" image inspect "$image-$key" >/dev/null 2>&1; then
		return 0
	fi
	log "$* import $image"
	"$@" import --change "LABEL hpctl.key=$key" "$tarball" "$image" >/dev/null
	"$@" tag "$image" "$image-$key"
}
import_if_stale podman

# Rootless podman: a user with subordinate ids and host networking.
if ! id "$rl_user" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/bash "$rl_user"
fi
grep -q "^$rl_user:" /etc/subuid || echo "$rl_user:200000:65536" >>/etc/subuid
grep -q "^$rl_user:" /etc/subgid || echo "$rl_user:200000:65536" >>/etc/subgid
rl_home=$(getent passwd "$rl_user" | cut -d: -f6)
install -d -o "$rl_user" -g "$rl_user" "$rl_home/.config" "$rl_home/.config/containers"
cat >"$rl_home/.config/containers/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"

[engine]
runtime = "runc"
CONF
chown "$rl_user:" "$rl_home/.config/containers/containers.conf"
# The rootless run directory lives in /tmp (runuser opens no login session, so there is no
# XDG_RUNTIME_DIR) and outlives the processes it records: after a restart or a killed test
# run, podman still believes a container runs and refuses every command ("invalid internal
# status ... podman system migrate"). Its own remedy, then the user's stale containers go:
# this user exists for the tests alone.
if ! runuser -u "$rl_user" -- podman info >/dev/null 2>"$state/rootless-info.err"; then
	if grep -q 'podman system migrate' "$state/rootless-info.err"; then
		log "rootless podman state of $rl_user is stale: podman system migrate"
		# It exits 125 when it cannot stop a container whose conmon is gone, yet resets the
		# pause process: the second `podman info` below judges.
		runuser -u "$rl_user" -- podman system migrate >&2 || true
		# A container podman still thought running fails its first removal (no exit file
		# comes from a dead conmon) and is marked exited by it; the second one removes it.
		# Left over, they cost only disk (a copy of the image each), so failing is no stop.
		for _ in 1 2; do
			runuser -u "$rl_user" -- podman rm --force --time 0 --all >/dev/null 2>&1 && break
		done || log "some stale containers of $rl_user remain: runuser -u $rl_user -- podman rm -f --all"
	fi
	runuser -u "$rl_user" -- podman info >/dev/null 2>"$state/rootless-info.err" ||
		{ cat "$state/rootless-info.err" >&2; echo "$0: rootless podman for $rl_user does not work" >&2; exit 1; }
fi
import_if_stale runuser -u "$rl_user" -- podman

# clear_stale_pidfile FILE NAME: remove FILE unless the process it names is a NAME.
clear_stale_pidfile() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$2" ]]; then
		log "removing the stale pid file $1 (pid $pid is no $2)"
		rm -f "$1"
	fi
}

if ((docker)); then
	if ! docker version >/dev/null 2>&1; then
		log "starting dockerd"
		mkdir -p "$state/docker" /run/hpctl-docker
		# A killed dockerd leaves its pid file and its containerd's; dockerd refuses to start
		# while the first pid lives and waits for a containerd that is not there while the
		# second does, and after a restart either may be any other process's.
		clear_stale_pidfile /run/hpctl-docker/dockerd.pid dockerd
		clear_stale_pidfile /run/hpctl-docker/containerd/containerd.pid containerd
		setsid dockerd --iptables=false --ip6tables=false --bridge=none \
			--data-root "$state/docker" --exec-root /run/hpctl-docker \
			-H unix:///var/run/docker.sock --pidfile /run/hpctl-docker/dockerd.pid \
			>>"$state/dockerd.log" 2>&1 </dev/null &
		for _ in $(seq 60); do
			docker version >/dev/null 2>&1 && break
			sleep 0.5
		done
		docker version >/dev/null 2>&1 || { tail -20 "$state/dockerd.log" >&2; exit 1; }
	fi
	import_if_stale docker
fi
log "ready: image $image (key $key), rootless user $rl_user"
