"""A stage's resume state: the weights and optimizer state of its last completed epoch, so a
requeued job continues where the preempted one stopped."""

import glob
import json
import os
import sys

import numpy as np

from . import compat, fsutil


def read_state(state_dir):
    """The state/latest.json record, or None when there is none or it is incomplete."""
    p = os.path.join(state_dir, "latest.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        st = json.load(f)
    if not os.path.exists(os.path.join(state_dir, st["dir"], compat.STATE_WEIGHTS)):
        print("trainer: state %s is incomplete; starting the stage afresh" % p, file=sys.stderr)
        return None
    return st


def save_state(state_dir, model, st):
    """state/epoch-NNNN/{model[._]weights.h5, optimizer.npz}, then state/latest.json (atomic),
    then older epoch folders are removed: the state of the last completed epoch is kept."""
    name = "epoch-%04d" % st["epoch"]
    d = os.path.join(state_dir, name)
    tmp = d + ".tmp"
    fsutil.remove(tmp)
    os.makedirs(tmp)
    model.save_weights(os.path.join(tmp, compat.STATE_WEIGHTS))
    try:
        values = [compat.get_value(v) for v in compat.optimizer_variables(model.optimizer)]
        np.savez(os.path.join(tmp, "optimizer.npz"), *values)
    except Exception as e:  # weights alone still resume correctly
        print("trainer: warning: optimizer state not saved: %s" % e, file=sys.stderr)
    fsutil.remove(d)
    os.rename(tmp, d)
    st = dict(st, dir=name)
    fsutil.write_json(os.path.join(state_dir, "latest.json"), st)
    for old in glob.glob(os.path.join(state_dir, "epoch-*")):
        if os.path.basename(old) != name:
            fsutil.remove(old)


def restore_state(state_dir, model, st):
    d = os.path.join(state_dir, st["dir"])
    model.load_weights(os.path.join(d, compat.STATE_WEIGHTS))
    p = os.path.join(d, "optimizer.npz")
    if not os.path.exists(p):
        return
    try:
        saved = np.load(p)
        values = [saved["arr_%d" % i] for i in range(len(saved.files))]
        compat.build_optimizer(model.optimizer, model.trainable_variables)
        variables = compat.optimizer_variables(model.optimizer)
        if len(variables) != len(values) or any(
                tuple(v.shape) != tuple(a.shape) for v, a in zip(variables, values)):
            raise ValueError("%d saved values for %d optimizer variables" % (len(values), len(variables)))
        for v, a in zip(variables, values):
            v.assign(a)
    except Exception as e:
        print("trainer: warning: optimizer state not restored (%s); weights are" % e, file=sys.stderr)
