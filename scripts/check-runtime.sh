#!/usr/bin/env bash
# Manual acceptance test of a container runtime on a real Slurm cluster, end to end,
# through the job script hpctl renders (docs/test-cluster.md, "Proving a runtime"):
#
#   scripts/check-runtime.sh RUNTIME IMAGE
#   scripts/check-runtime.sh pyxis ~/sqsh/nvidia+tensorflow+22.02-tf2-py3.sqsh
#   GPUS=0 scripts/check-runtime.sh podman localhost/hpctl-trainer:test
#
# Run it on a login node (or with HPCTL=... 'hpctl --host LOGIN'), with hpctl and python3
# on PATH. It submits a one-stage spec whose command runs python3 in IMAGE under RUNTIME
# and checks that:
#   1. the container starts (the command's first line reaches the job's log);
#   2. the job's GPUs are visible in it (GPUS, default 1: the stage asks for them and
#      the command fails when it sees fewer; it counts /dev/nvidia[0-9]* and asks
#      TensorFlow or nvidia-smi when the image has one);
#   3. a USR2 sent to the batch shell (scancel --batch --signal=USR2) reaches the command
#      in the container, which exits 99;
#   4. that exit code passes through: the stage is marked REQUEUED, Slurm requeues the
#      job, and its second attempt completes.
# Environment: GPUS (default 1), PARTITION (default: the cluster's), WORKDIR (default
# ~/hpctl-check-runtime; must be visible to the compute nodes), TIMEOUT seconds per
# wait (default 600), HPCTL (default hpctl). Exit 0 when every check passed.
set -euo pipefail

usage() {
	echo "usage: $0 RUNTIME IMAGE   (RUNTIME: pyxis, apptainer, singularity, docker, podman)" >&2
	exit 2
}
[[ $# -eq 2 ]] || usage
runtime=$1 image=$2
gpus=${GPUS:-1}
timeout=${TIMEOUT:-600}
read -r -a hpctl <<<"${HPCTL:-hpctl}"
workdir=${WORKDIR:-$HOME/hpctl-check-runtime}
[[ $gpus =~ ^[0-9]+$ ]] || { echo "$0: GPUS must be a number" >&2; exit 2; }

fail() {
	echo "check-runtime: FAIL: $*" >&2
	exit 1
}
ok() { echo "check-runtime: ok: $*"; }

mkdir -p "$workdir"/data/{train,val}/{a,b}
spec=$workdir/check-$runtime.yaml

# The command: report, then wait for USR2 (first attempt) or end at once (second).
read -r -d '' program <<'PY' || true
import glob, os, signal, subprocess, sys, time
attempt = int(os.environ.get("HPCTL_ATTEMPT", "1"))
want = int(os.environ.get("CHECK_GPUS", "0"))
print("check-runtime: started attempt %d in the container, python %s" % (attempt, sys.version.split()[0]), flush=True)
seen = len(glob.glob("/dev/nvidia[0-9]*"))
try:
    import tensorflow as tf
    seen = max(seen, len(tf.config.list_physical_devices("GPU")))
except Exception:
    pass
print("check-runtime: GPUs visible: %d (CUDA_VISIBLE_DEVICES=%s)" % (seen, os.environ.get("CUDA_VISIBLE_DEVICES", "")), flush=True)
if seen < want:
    sys.exit(3)
if attempt > 1:
    print("check-runtime: resumed after the requeue", flush=True)
    sys.exit(0)
def usr2(signum, frame):
    print("check-runtime: USR2 reached the command", flush=True)
    sys.exit(99)
signal.signal(signal.SIGUSR2, usr2)
print("check-runtime: waiting for USR2", flush=True)
for _ in range(3600):
    time.sleep(1)
sys.exit(4)
PY

# The spec: values are written as JSON strings, which YAML reads as they are.
q() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
{
	echo "name: check-$runtime"
	echo "workdir: $(q "$workdir/runs")"
	echo "data: {train: $(q "$workdir/data/train"), val: $(q "$workdir/data/val")}"
	echo "slurm:"
	echo "  time: \"00:30:00\""
	echo "  gpus: $gpus"
	echo "  cpus_per_task: 1"
	echo "  mem: 2G"
	echo "  signal_before: 60"
	echo "  requeue: true"
	[[ -n ${PARTITION:-} ]] && echo "  partition: $(q "$PARTITION")"
	echo "container:"
	echo "  runtime: $(q "$runtime")"
	echo "  image: $(q "$image")"
	echo "stages:"
	echo "  - name: check"
	# One line (a command word cannot hold a newline): the program travels in base64.
	echo "    command: [\"env\", \"CHECK_GPUS=$gpus\", \"python3\", \"-c\", $(q "import base64; exec(base64.b64decode('$(base64 -w0 <<<"$program")'))")]"
} >"$spec"

"${hpctl[@]}" validate "$spec" >/dev/null || fail "hpctl validate refused the spec (above)"
ok "spec $spec"
out=$("${hpctl[@]}" submit "$spec" -o json) || fail "hpctl submit refused (above): the runtime, its image or the GPUs are not usable here"
read -r run_id run_dir job_id < <(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["run_id"], r["run_dir"], r["jobs"][0]["job_id"])' <<<"$out")
ok "submitted run $run_id, job $job_id"
log=$run_dir/logs/check-$job_id.out
marker=$run_dir/stages/check/.hpctl

# wait_for WHAT CMD...: poll CMD every 2 s until it succeeds or TIMEOUT passes.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < timeout; i += 2)); do
		"$@" && return 0
		sleep 2
	done
	"${hpctl[@]}" status "$run_id" >&2 || true
	cat "$run_dir"/logs/* >&2 2>/dev/null || true
	"${hpctl[@]}" cancel "$run_id" >/dev/null 2>&1 || true
	fail "$what (after $timeout s)"
}
logged() { grep -qs -e "$1" "$run_dir"/logs/*; }

wait_for "the container did not start" logged "check-runtime: waiting for USR2"
ok "the container started: $(grep -h 'started attempt' "$run_dir"/logs/* | head -n 1)"
ok "$(grep -h 'GPUs visible' "$run_dir"/logs/* | head -n 1)"
scancel --batch --signal=USR2 "$job_id"
wait_for "USR2 did not reach the command" logged "USR2 reached the command"
ok "USR2 reached the command in the container"
wait_for "the job was not requeued" logged "resumed after the requeue"
grep -qs "^attempt=2" "$marker/started" || fail "the second attempt is not marked"
ok "exit 99 passed through: the job was requeued and its second attempt ran"
wait_for "the second attempt did not complete" grep -qs "^state=COMPLETED" "$marker/finished"
ok "the stage completed; log $log"
echo "check-runtime: PASS: $runtime with $image ($gpus GPUs)"
