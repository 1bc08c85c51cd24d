"""Several nodes: two train.py processes on this machine as two workers of
MultiWorkerMirroredStrategy, given HPCTL_WORKERS and SLURM_PROCID as the job script and
srun give them on two nodes. The real two-node Slurm test is e2e/multinode_test.go."""

import csv
import json
import os
import socket
import subprocess

import pytest

from conftest import env, make_spec, train_cmd
from hpctl_trainer import InputError
from hpctl_trainer.distribute import cluster_from_env


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_cluster_from_env():
    assert cluster_from_env({}) is None
    assert cluster_from_env({"HPCTL_WORKERS": "a:1"}) is None
    assert cluster_from_env({"HPCTL_WORKERS": "a:1,b:2", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}) == (["a:1", "b:2"], 1)
    for bad in ({"HPCTL_WORKERS": "a:1,b:2"},  # no task index: not started by srun
                {"HPCTL_WORKERS": "a:1,b:2", "SLURM_PROCID": "2"},
                {"HPCTL_WORKERS": "a:1,b:2", "SLURM_PROCID": "0", "SLURM_NTASKS": "3"},
                {"HPCTL_WORKERS": "a:1,b", "SLURM_PROCID": "0"}):
        with pytest.raises(InputError):
            cluster_from_env(bad)


def run_workers(spec_path, stage, run_dir, n=2, timeout=600, extra=None):
    workers = ",".join("127.0.0.1:%d" % p for p in free_ports(n))
    procs = []
    for i in range(n):
        e = env()
        e.update({"HPCTL_WORKERS": workers, "SLURM_PROCID": str(i), "SLURM_NTASKS": str(n)})
        e.update(extra or {})
        procs.append(subprocess.Popen(train_cmd(spec_path, stage, run_dir), cwd=run_dir, env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      universal_newlines=True))
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append((p.returncode, out))
    return outs


def test_two_workers_train_together(dataset, tmp_path):
    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=2, finetune_epochs=2)
    for stage in ("frozen", "finetune"):
        outs = run_workers(spec_path, stage, run_dir)
        for i, (code, out) in enumerate(outs):
            assert code == 0, "worker %d:\n%s" % (i, out)
            assert "worker %d of 2" % i in out, out
        d = os.path.join(run_dir, "stages", stage)
        with open(os.path.join(d, "history.csv")) as f:
            rows = list(csv.DictReader(f))
        # The chief alone writes the history: one row per epoch, no duplicates.
        assert [int(r["epoch"]) for r in rows] == [1, 2], rows
        m = json.load(open(os.path.join(d, "metrics.json")))
        assert m["nodes"] == 2 and m["replicas"] == 2, m
        assert m["global_batch_size"] == 8 * 2, m
        assert os.path.exists(os.path.join(d, "evaluation.json"))
    # The other worker wrote nothing into the run directory and left no folder behind.
    assert sorted(os.listdir(os.path.join(run_dir, "stages"))) == ["finetune", "frozen"]
    assert m["best_val_accuracy"] >= 0.8, m


def test_mark_preempted_by_the_chief_only(tmp_path):
    from hpctl_trainer.distribute import mark_preempted
    mark = str(tmp_path / "mark")
    mark_preempted({"HPCTL_PREEMPTED_MARK": mark, "SLURM_PROCID": "1"})
    assert not os.path.exists(mark)
    mark_preempted({"SLURM_PROCID": "0"})  # one node: no mark asked for
    assert not os.path.exists(mark)
    mark_preempted({"HPCTL_PREEMPTED_MARK": mark, "SLURM_PROCID": "0"})
    assert open(mark).read() == "preempted\n"
