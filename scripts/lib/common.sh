# shellcheck shell=bash
# Shared helpers for the test-cluster scripts (slurm-*.sh, sshd-*.sh).
# Sourced, never run. Callers set `set -euo pipefail` themselves.
# shellcheck disable=SC2034 # constants used by the scripts that source this file

# Where everything of the Slurm test cluster lives (state, logs, pid files).
HPCTL_SLURM_STATE=${HPCTL_SLURM_STATE:-/var/lib/hpctl-slurm}
SLURM_ETC=/etc/slurm
SLURM_CONF_FILE=$SLURM_ETC/slurm.conf
CLUSTER_NAME=hpctl
DB_NAME=slurm_acct_db
DB_USER=slurm

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
}

# APT_UPDATED guards against running apt-get update more than once per script run.
APT_UPDATED=0

# ensure_packages PKG...: install the packages that are not installed yet.
# Runs apt-get update (at most once) only when something is missing and the package
# lists are old or do not serve the install.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	# policy-rc.d (exit 101) keeps postinst scripts from starting services; we start
	# what we need ourselves. Package lists updated within the hour are used as they
	# are; if the install fails with them, update once and retry.
	if [ "$APT_UPDATED" -eq 0 ] && [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n1)" ]; then
		if apt_install "${missing[@]}"; then
			return 0
		fi
	fi
	if [ "$APT_UPDATED" -eq 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		APT_UPDATED=1
	fi
	apt_install "${missing[@]}"
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# pid_alive PIDFILE COMM: true when the pid file names a running process called COMM.
# The name matters: a pid file outlives a restart or a kill -9, and its pid may by then be
# any other process's, which must neither pass for the daemon nor be killed as it.
pid_alive() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	[[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# stop_pidfile NAME PIDFILE [SECONDS]: SIGTERM the process, wait, then SIGKILL. NAME's
# first word is the daemon's process name ("slurmd n1": slurmd).
stop_pidfile() {
	local name=$1 pidfile=$2 secs=${3:-20} pid i
	if ! pid_alive "$pidfile" "${name%% *}"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(cat "$pidfile")
	log "stopping $name (pid $pid)"
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name did not stop in ${secs}s, sending SIGKILL"
		kill -9 "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	log "timed out after ${secs}s waiting for $what"
	return 1
}

# write_if_changed FILE MODE: write stdin to FILE when its content differs.
# Returns 0 when the file changed, 1 when it was already up to date.
write_if_changed() {
	local file=$1 mode=$2 tmp
	tmp=$(mktemp "$file.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		chmod "$mode" "$file"
		return 1
	fi
	mv -f "$tmp" "$file"
	return 0
}

# Controller helpers, shared by slurm-up.sh and slurmctld-{start,stop}.sh.
ctld_pidfile() { echo "$HPCTL_SLURM_STATE/run/slurmctld.pid"; }

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
	if pid_alive "$(ctld_pidfile)" slurmctld && ctld_up; then
		return 0
	fi
	log "starting slurmctld"
	setsid slurmctld </dev/null >>"$HPCTL_SLURM_STATE/log/slurmctld.out" 2>&1
	wait_for 60 slurmctld ctld_up || die "slurmctld did not come up; see $HPCTL_SLURM_STATE/log/slurmctld.log"
}

stop_slurmctld() {
	stop_pidfile slurmctld "$(ctld_pidfile)" 30
}

node_name() { hostname -s; }

# wait_node_ready SECONDS: wait until the node is schedulable (idle, mixed or allocated),
# resuming it when it comes back drained, down or invalid after a restart.
wait_node_ready() {
	local secs=${1:-60} node state i
	node=$(node_name)
	for ((i = 0; i < secs * 2; i++)); do
		state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null | head -n1 || true)
		case "$state" in
		idle | mix | alloc | comp) return 0 ;;
		*'*'* | '') ;; # not responding yet, or controller not answering: wait
		*drain* | *drng* | *inval* | down | fail*)
			log "node $node is '$state', resuming it"
			scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
			;;
		esac
		sleep 0.5
	done
	log "node $node state: '$state'"
	scontrol show node "$node" >&2 || true
	return 1
}
