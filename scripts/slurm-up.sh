#!/usr/bin/env bash
# Start a real single-node Slurm cluster (Debian 12, slurm-wlm 22.05) on this machine:
# munged, MariaDB + slurmdbd (accounting), slurmctld, slurmd, two fake GPUs as gres.
# Run as root; no systemd needed. Idempotent: a second run only starts what is not
# running, and a run with the other accounting mode rewrites slurm.conf and restarts.
#
#   scripts/slurm-up.sh                  # with accounting (sacct works)
#   scripts/slurm-up.sh --no-accounting  # AccountingStorageType=accounting_storage/none
#   scripts/slurm-up.sh --max-array-size=10  # MaxArraySize (default 1001): large sweeps split
#
# Environment: HPCTL_SLURM_STATE (default /var/lib/hpctl-slurm), HPCTL_SLURM_CPUS
# (job slots declared for the node, default 4), HPCTL_SLURM_PARTITION (default debug).
# See docs/test-cluster.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

ACCOUNTING=1
MAX_ARRAY_SIZE=1001
for arg in "$@"; do
	case "$arg" in
	--no-accounting) ACCOUNTING=0 ;;
	--accounting) ACCOUNTING=1 ;;
	--max-array-size=*)
		MAX_ARRAY_SIZE=${arg#*=}
		[[ $MAX_ARRAY_SIZE =~ ^[1-9][0-9]*$ ]] || die "--max-array-size needs a positive number"
		;;
	-h | --help)
		sed -n '2,14p' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done

require_root
START=$(date +%s.%N)
NODE=$(node_name)
CPUS=${HPCTL_SLURM_CPUS:-4}
PARTITION=${HPCTL_SLURM_PARTITION:-debug}
S=$HPCTL_SLURM_STATE

PKGS=(munge slurm-wlm slurm-client)
[ "$ACCOUNTING" -eq 1 ] && PKGS+=(slurmdbd mariadb-server)
ensure_packages "${PKGS[@]}"

mkdir -p "$S"/{ctld,spool,log,run} "$SLURM_ETC"
chmod 755 "$S"

# --- fake GPUs: two character devices for gres.conf File= -----------------------------
if [ -c /dev/tty0 ] && [ -c /dev/tty1 ]; then
	GPU_FILES='/dev/tty[0-1]'
else
	# Stand-ins with the major/minor of /dev/null: slurmd only stats them.
	mkdir -p "$S/dev"
	for i in 0 1; do
		[ -c "$S/dev/gpu$i" ] || mknod -m 666 "$S/dev/gpu$i" c 1 3
	done
	GPU_FILES="$S/dev/gpu[0-1]"
fi

# --- munge -----------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
	log "creating /etc/munge/munge.key"
	mungekey --create --keyfile=/etc/munge/munge.key
	chown munge:munge /etc/munge/munge.key
	chmod 400 /etc/munge/munge.key
fi
munge_ok() { munge -n | unmunge; }
if ! munge_ok >/dev/null 2>&1; then
	log "starting munged"
	mkdir -p /run/munge /var/log/munge
	chown munge:munge /run/munge /var/log/munge
	chmod 755 /run/munge
	runuser -u munge -- munged </dev/null >/dev/null 2>&1
	wait_for 15 munged munge_ok || die "munged did not start; see /var/log/munge/munged.log"
fi

# --- slurm.conf / gres.conf ------------------------------------------------------------
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 - 1024}' /proc/meminfo)
if [ "$ACCOUNTING" -eq 1 ]; then
	ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu"
else
	ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi

CONF_CHANGED=0
if write_if_changed "$SLURM_CONF_FILE" 644 <<EOF; then CONF_CHANGED=1; fi
# Written by hpctl scripts/slurm-up.sh: a single-node test cluster. Do not edit by hand.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups in this machine.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
# Declare $CPUS job slots whatever nproc says (slurmd would otherwise mark the node INVALID).
SlurmdParameters=config_overrides

# Scheduling: react within seconds so short jobs and afterok chains resolve quickly.
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
PriorityType=priority/basic

ReturnToService=2
MinJobAge=300
MaxJobCount=50000
MaxArraySize=$MAX_ARRAY_SIZE
KillOnBadExit=1
JobRequeue=1
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60

JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$ACCT_LINES

NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

if write_if_changed "$SLURM_ETC/gres.conf" 644 <<EOF; then CONF_CHANGED=1; fi
# Written by hpctl scripts/slurm-up.sh: two fake GPUs.
NodeName=$NODE Name=gpu File=$GPU_FILES
EOF

if [ "$CONF_CHANGED" -eq 1 ]; then
	log "Slurm configuration changed: restarting slurmd and slurmctld"
	stop_pidfile slurmd "$S/run/slurmd.pid"
	stop_slurmctld
fi

# --- accounting: MariaDB + slurmdbd ----------------------------------------------------
dbd_pidfile=$S/run/slurmdbd.pid
if [ "$ACCOUNTING" -eq 1 ]; then
	write_if_changed /etc/mysql/mariadb.conf.d/99-hpctl-slurm.cnf 644 <<'EOF' || true
# Written by hpctl scripts/slurm-up.sh: values slurmdbd recommends.
[mysqld]
bind-address = 127.0.0.1
innodb_buffer_pool_size = 256M
innodb_lock_wait_timeout = 900
innodb_log_file_size = 64M
EOF
	db_ok() { mysqladmin --connect-timeout=2 ping; }
	if ! db_ok >/dev/null 2>&1; then
		if [ ! -d /var/lib/mysql/mysql ]; then
			log "initialising MariaDB data directory"
			mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$S/log/mariadb-install.log" 2>&1
		fi
		log "starting MariaDB (mysqld_safe)"
		mkdir -p /run/mysqld
		chown mysql:mysql /run/mysqld
		touch "$S/log/mariadb.log"
		chown mysql:mysql "$S/log/mariadb.log"
		setsid mysqld_safe --skip-syslog --log-error="$S/log/mariadb.log" </dev/null >>"$S/log/mysqld_safe.out" 2>&1 &
		wait_for 60 MariaDB db_ok || die "MariaDB did not start; see $S/log/mariadb.log"
	fi

	if [ ! -s "$S/dbd.pass" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$S/dbd.pass")
	fi
	DB_PASS=$(cat "$S/dbd.pass")
	mysql -uroot <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF

	DBD_CHANGED=0
	if write_if_changed "$SLURM_ETC/slurmdbd.conf" 600 <<EOF; then DBD_CHANGED=1; fi
# Written by hpctl scripts/slurm-up.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$S/log/slurmdbd.log
PidFile=$dbd_pidfile
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
	[ "$DBD_CHANGED" -eq 1 ] && stop_pidfile slurmdbd "$dbd_pidfile"
	dbd_ok() { sacctmgr -n -P list cluster format=cluster; }
	if ! pid_alive "$dbd_pidfile" slurmdbd || ! dbd_ok >/dev/null 2>&1; then
		stop_pidfile slurmdbd "$dbd_pidfile"
		log "starting slurmdbd"
		setsid slurmdbd </dev/null >>"$S/log/slurmdbd.out" 2>&1
		wait_for 60 slurmdbd dbd_ok || die "slurmdbd did not answer; see $S/log/slurmdbd.log"
	fi
	if ! dbd_ok 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
		log "registering cluster $CLUSTER_NAME in slurmdbd"
		sacctmgr -i add cluster "$CLUSTER_NAME" >&2
	fi
else
	# Many sites run without slurmdbd: make sure ours is not answering.
	stop_pidfile slurmdbd "$dbd_pidfile"
fi

# --- slurmctld, slurmd -----------------------------------------------------------------
start_slurmctld
if ! pid_alive "$S/run/slurmd.pid" slurmd; then
	log "starting slurmd"
	setsid slurmd </dev/null >>"$S/log/slurmd.out" 2>&1
fi
wait_node_ready 60 || die "node $NODE did not become idle; see $S/log/slurmd.log and $S/log/slurmctld.log"

if [ "$ACCOUNTING" -eq 1 ]; then
	wait_for 60 sacct sacct -X -n -P || die "sacct does not answer; see $S/log/slurmdbd.log"
fi

ELAPSED=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
MODE=accounting
[ "$ACCOUNTING" -eq 1 ] || MODE="no accounting (sacct disabled)"
cat <<EOF
Slurm test cluster ready in ${ELAPSED}s: node $NODE, partition $PARTITION, $CPUS CPUs, 2 GPUs (gres), $MODE.
  config:  $SLURM_CONF_FILE  $SLURM_ETC/gres.conf$([ "$ACCOUNTING" -eq 1 ] && echo "  $SLURM_ETC/slurmdbd.conf")
  state:   $S/{ctld,spool}
  logs:    $S/log/{slurmctld,slurmd$([ "$ACCOUNTING" -eq 1 ] && echo ",slurmdbd,mariadb")}.log  /var/log/munge/munged.log
  stop:    scripts/slurm-down.sh [--purge]
EOF
