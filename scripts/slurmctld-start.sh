#!/usr/bin/env bash
# Start slurmctld of the test cluster again (after scripts/slurmctld-stop.sh), recovering
# its saved job state, and wait until the controller answers and the node is usable.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
require_root
[ -f "$SLURM_CONF_FILE" ] || die "$SLURM_CONF_FILE missing: run scripts/slurm-up.sh first"
start_slurmctld
wait_node_ready 60 || die "node did not become usable; see $HPCTL_SLURM_STATE/log/slurmctld.log"
log "slurmctld up"
