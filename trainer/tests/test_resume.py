"""Preemption: SIGUSR2 -> state saved, exit 99; SIGKILL; both resume at the right epoch with
no duplicate history rows."""

import csv
import json
import os
import signal
import subprocess
import time

from conftest import env, make_spec, run, train_cmd

EPOCHS = 12


def epochs_in(path):
    with open(path) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def state_epoch(run_dir):
    p = os.path.join(run_dir, "stages", "frozen", "state", "latest.json")
    try:
        with open(p) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def start_and_wait(spec_path, run_dir, min_epoch, timeout=120):
    p = subprocess.Popen(train_cmd(spec_path, "frozen", run_dir), cwd=run_dir, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    t0 = time.time()
    while state_epoch(run_dir) < min_epoch:
        assert p.poll() is None, "trainer ended early: " + p.communicate()[1]
        assert time.time() - t0 < timeout
        time.sleep(0.05)
    return p


def finish_and_check(spec_path, run_dir, done):
    r = run(train_cmd(spec_path, "frozen", run_dir), cwd=run_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming after epoch %d" % done in r.stderr
    assert "Epoch %d/%d" % (done + 1, EPOCHS) in r.stdout
    assert "Epoch %d/%d" % (done, EPOCHS) not in r.stdout
    assert epochs_in(os.path.join(run_dir, "stages", "frozen", "history.csv")) == list(range(1, EPOCHS + 1))
    m = json.load(open(os.path.join(run_dir, "stages", "frozen", "metrics.json")))
    assert m["epochs_run"] == EPOCHS and m["attempts"] == 2


def test_sigusr2_saves_state_and_exits_99(dataset, tmp_path):
    run_dir = str(tmp_path)
    spec_path, _ = make_spec(run_dir, dataset, frozen_epochs=EPOCHS)
    p = start_and_wait(spec_path, run_dir, 2)
    p.send_signal(signal.SIGUSR2)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 99, err
    assert "preempted" in err
    done = state_epoch(run_dir)
    assert 2 <= done < EPOCHS
    # history holds exactly the completed epochs
    assert epochs_in(os.path.join(run_dir, "stages", "frozen", "history.csv")) == list(range(1, done + 1))
    assert len(os.listdir(os.path.join(run_dir, "stages", "frozen", "state"))) == 2  # latest.json + 1 dir
    finish_and_check(spec_path, run_dir, done)


def test_sigkill_resumes_without_duplicates(dataset, tmp_path):
    run_dir = str(tmp_path)
    spec_path, _ = make_spec(run_dir, dataset, frozen_epochs=EPOCHS)
    p = start_and_wait(spec_path, run_dir, 2)
    time.sleep(0.3)  # likely mid-epoch, after some history rows beyond the saved state
    p.kill()
    p.communicate()
    done = state_epoch(run_dir)
    assert done < EPOCHS, "finished before the kill; make epochs slower"
    finish_and_check(spec_path, run_dir, done)


def test_mixed_precision_resume_restores_optimizer(dataset, tmp_path):
    """Resume state with mixed_float16 (LossScaleOptimizer) restores weights and optimizer."""
    run_dir = str(tmp_path)
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=1)
    spec["training"]["mixed_precision"] = True
    json.dump(spec, open(spec_path, "w"))
    r = run(train_cmd(spec_path, "frozen", run_dir), cwd=run_dir)
    assert r.returncode == 0, r.stderr
    spec["stages"][0]["epochs"] = 2  # as if the first attempt had stopped after epoch 1
    json.dump(spec, open(spec_path, "w"))
    r = run(train_cmd(spec_path, "frozen", run_dir), cwd=run_dir)
    assert r.returncode == 0, r.stderr
    assert "resuming after epoch 1" in r.stderr
    assert "not restored" not in r.stderr
    assert epochs_in(os.path.join(run_dir, "stages", "frozen", "history.csv")) == [1, 2]
