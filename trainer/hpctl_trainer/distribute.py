"""Which tf.distribute strategy a stage trains with, and the worker's place in it.

One node: MirroredStrategy over its GPUs (or the default strategy for one device). Several
nodes (slurm.nodes > 1): MultiWorkerMirroredStrategy, one worker per node. The job script
exports HPCTL_WORKERS, the workers' address:port in task order, read from Slurm on the
host; srun gives each task SLURM_PROCID. The cluster is built from those rather than with
SlurmClusterResolver, which reads SLURM_STEP_NODELIST and node names a container may not
resolve, and counts tasks per node from variables that differ inside a step
(tensorflow#36094).
"""

import json
import os
import shutil
import sys
import tempfile

from . import InputError
from .compat import tf

# A collective that waits longer than this fails the step: a worker that died (or hangs)
# ends the others with an error instead of leaving them waiting for ever. Generous, since
# the first collectives wait for every worker to have started TensorFlow.
COLLECTIVE_TIMEOUT_S = float(os.environ.get("HPCTL_COLLECTIVE_TIMEOUT", "600"))


class Worker(object):
    """This process's place: index (0 is the chief), count, and the strategy."""

    def __init__(self, strategy, index=0, count=1):
        self.strategy = strategy
        self.index = index
        self.count = count
        self._tmp = None

    @property
    def multi(self):
        return self.count > 1

    @property
    def chief(self):
        return self.index == 0

    def output_dir(self, run_dir):
        """Where this worker writes: the run directory for the chief, a temporary folder
        of its own for the others (they must save too: saving may hold collectives)."""
        if self.chief:
            return run_dir
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="hpctl-worker%d-" % self.index)
        return self._tmp

    def cleanup(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def any_true(self, flag):
        """True on every worker when flag is true on any: a collective decision."""
        if not self.multi:
            return bool(flag)
        s = self.strategy
        v = s.run(lambda: tf.constant(1.0 if flag else 0.0))
        return float(s.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)) > 0


def cluster_from_env(env=None):
    """(workers, index) from HPCTL_WORKERS and SLURM_PROCID, or None on one node."""
    env = os.environ if env is None else env
    spec = env.get("HPCTL_WORKERS", "").strip()
    if not spec:
        return None
    workers = spec.split(",")
    for w in workers:
        host, _, port = w.rpartition(":")
        if not host or not port.isdigit():
            raise InputError("HPCTL_WORKERS=%r: %r is not address:port" % (spec, w))
    if len(workers) < 2:
        return None
    index = env.get("SLURM_PROCID", "")
    if not index.isdigit() or int(index) >= len(workers):
        raise InputError("HPCTL_WORKERS lists %d workers, but SLURM_PROCID is %r: run one task per "
                         "node with srun (the job script does)" % (len(workers), index))
    ntasks = env.get("SLURM_NTASKS", "")
    if ntasks.isdigit() and int(ntasks) != len(workers):
        raise InputError("HPCTL_WORKERS lists %d workers, but srun started %s tasks"
                         % (len(workers), ntasks))
    return workers, int(index)


def make_worker(gpus, env=None):
    """The strategy for a stage asking for gpus GPUs per node. Call it before any other
    TensorFlow work: MultiWorkerMirroredStrategy must configure collectives first."""
    c = cluster_from_env(env)
    if c is None:
        if gpus > 1:
            return Worker(tf.distribute.MirroredStrategy())
        return Worker(tf.distribute.get_strategy())
    workers, index = c
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers},
                                          "task": {"type": "worker", "index": index}})
    opts = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=opts)
    print("trainer: worker %d of %d (%s), %d replicas in sync; node %s"
          % (index, len(workers), workers[index], strategy.num_replicas_in_sync,
             os.environ.get("SLURMD_NODENAME", "?")), file=sys.stderr)
    return Worker(strategy, index, len(workers))


def shard_by_data(ds):
    """Each worker takes every n-th batch: the data set is a list of files read in one
    map, which tf.data cannot shard by file (it would warn and fall back to this)."""
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def mark_preempted(env=None):
    """On several nodes, the chief leaves the job script a mark that the workers stopped
    on SIGUSR2: srun may report a worker killed on its way out rather than its exit 99."""
    env = os.environ if env is None else env
    path = env.get("HPCTL_PREEMPTED_MARK", "")
    if not path or env.get("SLURM_PROCID", "0") != "0":
        return
    try:
        with open(path, "w") as f:
            f.write("preempted\n")
    except OSError as e:
        print("trainer: could not write %s: %s" % (path, e), file=sys.stderr)
