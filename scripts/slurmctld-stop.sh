#!/usr/bin/env bash
# Stop only slurmctld of the test cluster (slurmd, slurmdbd keep running), so tests can
# see how hpctl behaves with the controller unreachable. Restart: scripts/slurmctld-start.sh.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
require_root
stop_slurmctld
log "slurmctld stopped"
