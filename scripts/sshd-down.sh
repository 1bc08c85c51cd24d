#!/usr/bin/env bash
# Stop the test sshd started by scripts/sshd-up.sh. Connections already open (ssh
# ControlMaster sessions) are served by their own sshd children and end on their own.
#
#   scripts/sshd-down.sh          # stop; keys, config and log stay
#   scripts/sshd-down.sh --purge  # also delete $HPCTL_SSHD_STATE (keys, log)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

PURGE=0
for arg in "$@"; do
	case "$arg" in
	--purge) PURGE=1 ;;
	-h | --help)
		sed -n '2,7p' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done
require_root
S=${HPCTL_SSHD_STATE:-/var/lib/hpctl-sshd}
stop_pidfile sshd "$S/sshd.pid"
if [ "$PURGE" -eq 1 ]; then
	log "removing $S"
	rm -rf "$S"
fi
log "test sshd stopped"
