#!/usr/bin/env bash
# Stop the Slurm test cluster started by scripts/slurm-up.sh: slurmd, slurmctld,
# slurmdbd, MariaDB and munged.
#
#   scripts/slurm-down.sh          # stop; job state, accounting database and logs stay
#   scripts/slurm-down.sh --purge  # also drop the accounting database and delete
#                                  # $HPCTL_SLURM_STATE (job state, logs): a clean reset
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

PURGE=0
for arg in "$@"; do
	case "$arg" in
	--purge) PURGE=1 ;;
	-h | --help)
		sed -n '2,8p' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done
require_root
S=$HPCTL_SLURM_STATE

stop_pidfile slurmd "$S/run/slurmd.pid"
stop_slurmctld
stop_pidfile slurmdbd "$S/run/slurmdbd.pid"

if command -v mysqladmin >/dev/null && mysqladmin --connect-timeout=2 ping >/dev/null 2>&1; then
	if [ "$PURGE" -eq 1 ]; then
		log "dropping database $DB_NAME"
		mysql -uroot -e "DROP DATABASE IF EXISTS $DB_NAME; DROP USER IF EXISTS '$DB_USER'@'localhost';"
	fi
	log "stopping MariaDB"
	mysqladmin shutdown
	wait_for 30 MariaDB test ! -S /run/mysqld/mysqld.sock || log "MariaDB socket still present"
fi

stop_pidfile munged /run/munge/munged.pid

if [ "$PURGE" -eq 1 ]; then
	log "removing $S"
	rm -rf "$S"
fi
log "Slurm test cluster stopped"
