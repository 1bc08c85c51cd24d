#!/usr/bin/env bash
# Start a second, separate Slurm cluster on this machine with two nodes, n1 and n2: two
# slurmd daemons on one host (Debian's build allows it: `slurmd -N n1`, `slurmd -N n2`),
# each declared with NodeHostname=<this host> and a port of its own. It is for the
# multi-node tests (slurm.nodes: 2) and leaves the single-node cluster of
# scripts/slurm-up.sh alone: its own slurm.conf (SLURM_CONF), ClusterName, ports, state,
# spool and log directories; only munged is shared. No accounting (no slurmdbd).
# Run as root; idempotent: a second run only starts what is not running.
#
#   scripts/slurm-up-2nodes.sh            # start (or check) the two-node cluster
#   scripts/slurm-up-2nodes.sh --down     # stop its three daemons
#   SLURM_CONF=/etc/slurm-2nodes/slurm.conf sinfo   # talk to it
#
# Environment: HPCTL_SLURM2_STATE (default /var/lib/hpctl-slurm-2nodes), HPCTL_SLURM2_ETC
# (default /etc/slurm-2nodes), HPCTL_SLURM2_CPUS (job slots per node, default 2),
# HPCTL_SLURM2_PORT (slurmctld port, default 7817; the nodes use +4 and +5).
# See docs/test-cluster.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DOWN=0
for arg in "$@"; do
	case "$arg" in
	--down) DOWN=1 ;;
	-h | --help)
		sed -n '2,17p' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done

require_root
S=${HPCTL_SLURM2_STATE:-/var/lib/hpctl-slurm-2nodes}
ETC=${HPCTL_SLURM2_ETC:-/etc/slurm-2nodes}
CONF=$ETC/slurm.conf
CPUS=${HPCTL_SLURM2_CPUS:-2}
PORT=${HPCTL_SLURM2_PORT:-7817}
HOST=$(node_name)
NODES=(n1 n2)
# Every client command below talks to this cluster, never to the single-node one.
export SLURM_CONF=$CONF

ctld2_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

if [ "$DOWN" -eq 1 ]; then
	for n in "${NODES[@]}"; do
		stop_pidfile "slurmd $n" "$S/run/slurmd-$n.pid"
	done
	stop_pidfile slurmctld "$S/run/slurmctld.pid" 30
	exit 0
fi

START=$(date +%s.%N)
ensure_packages munge slurm-wlm slurm-client
mkdir -p "$S"/{ctld,spool,log,run,dev} "$ETC"
chmod 755 "$S"

# munged is shared with the single-node cluster (same key); start it only if it is down.
if ! { munge -n | unmunge; } >/dev/null 2>&1; then
	if [ ! -s /etc/munge/munge.key ]; then
		mungekey --create --keyfile=/etc/munge/munge.key
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	fi
	log "starting munged"
	mkdir -p /run/munge /var/log/munge
	chown munge:munge /run/munge /var/log/munge
	chmod 755 /run/munge
	runuser -u munge -- munged </dev/null >/dev/null 2>&1
	wait_for 15 munged sh -c 'munge -n | unmunge' || die "munged did not start"
fi

# Two fake GPUs per node (stand-in character devices: slurmd only stats them), so that
# --gres=gpu:G is accepted as on a GPU cluster. Both slurmd share the same two files.
for i in 0 1; do
	[ -c "$S/dev/gpu$i" ] || mknod -m 666 "$S/dev/gpu$i" c 1 3
done

MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 2048 - 512}' /proc/meminfo)
CONF_CHANGED=0
if write_if_changed "$CONF" 644 <<EOF; then CONF_CHANGED=1; fi
# Written by hpctl scripts/slurm-up-2nodes.sh: a two-node test cluster on one host.
# Do not edit by hand.
ClusterName=hpctl2nodes
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=$PORT
StateSaveLocation=$S/ctld
# %n: each slurmd (n1, n2) keeps its own spool, pid file and log.
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd-%n.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SlurmdParameters=config_overrides

SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu
PriorityType=priority/basic

ReturnToService=2
MinJobAge=300
KillOnBadExit=1
JobRequeue=1
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((PORT + 4)) CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((PORT + 5)) CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=two Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF

if write_if_changed "$ETC/gres.conf" 644 <<EOF; then CONF_CHANGED=1; fi
# Written by hpctl scripts/slurm-up-2nodes.sh: two fake GPUs per node.
NodeName=n[1-2] Name=gpu File=$S/dev/gpu[0-1]
EOF

if [ "$CONF_CHANGED" -eq 1 ]; then
	log "configuration changed: restarting the two-node cluster"
	for n in "${NODES[@]}"; do
		stop_pidfile "slurmd $n" "$S/run/slurmd-$n.pid"
	done
	stop_pidfile slurmctld "$S/run/slurmctld.pid" 30
fi

if ! pid_alive "$S/run/slurmctld.pid" slurmctld || ! ctld2_up; then
	log "starting slurmctld (port $PORT)"
	setsid slurmctld -f "$CONF" </dev/null >>"$S/log/slurmctld.out" 2>&1
	wait_for 60 slurmctld ctld2_up || die "slurmctld did not come up; see $S/log/slurmctld.log"
fi
for n in "${NODES[@]}"; do
	mkdir -p "$S/spool/$n"
	if ! pid_alive "$S/run/slurmd-$n.pid" slurmd; then
		log "starting slurmd $n"
		setsid slurmd -f "$CONF" -N "$n" </dev/null >>"$S/log/slurmd-$n.out" 2>&1
	fi
done

nodes_ready() {
	local n state
	for n in "${NODES[@]}"; do
		state=$(sinfo -h -N -n "$n" -o %t 2>/dev/null | head -n1 || true)
		case "$state" in
		idle | mix | alloc | comp) ;;
		*drain* | *drng* | *inval* | down | fail*)
			scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
			return 1
			;;
		*) return 1 ;;
		esac
	done
}
wait_for 60 "nodes n1 and n2" nodes_ready || {
	sinfo -N >&2 || true
	die "the two nodes did not become idle; see $S/log/slurmd-n1.log, slurmd-n2.log, slurmctld.log"
}

ELAPSED=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
cat <<EOF
Two-node Slurm test cluster ready in ${ELAPSED}s: nodes n1, n2 (both on $HOST), partition two, $CPUS CPUs and 2 GPUs (gres) each, no accounting.
  use:     SLURM_CONF=$CONF sinfo
  config:  $CONF  $ETC/gres.conf
  logs:    $S/log/{slurmctld,slurmd-n1,slurmd-n2}.log
  stop:    scripts/slurm-up-2nodes.sh --down
EOF
