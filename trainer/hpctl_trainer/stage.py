"""Running one stage: resume state, the training loop's callback, outputs."""

import glob
import json
import os
import random
import signal
import sys
import time

import numpy as np

from . import InputError, Preempted, compat, data, fsutil, model as mdl, weights
from .compat import keras, tf

HISTORY_HEADER = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]

_stop = {"requested": False}


def _on_usr2(signum, frame):
    _stop["requested"] = True
    print("trainer: SIGUSR2: stopping after the current batch, state of the last completed "
          "epoch is kept", file=sys.stderr)


def install_signal_handler():
    if hasattr(signal, "SIGUSR2"):
        signal.signal(signal.SIGUSR2, _on_usr2)


def stop_requested():
    return _stop["requested"]


def stage_dir(run_dir, name):
    return os.path.join(run_dir, "stages", name)


def checkpoint_path(sdir, which):
    """stages/<s>/checkpoints/<which>.<ext> in this Keras' format, else whichever exists."""
    p = os.path.join(sdir, "checkpoints", which + compat.MODEL_EXT)
    if os.path.exists(p):
        return p
    for ext in (".keras", ".h5"):
        q = os.path.join(sdir, "checkpoints", which + ext)
        if os.path.exists(q):
            return q
    return p


def read_model_info(ckpt):
    p = os.path.join(os.path.dirname(ckpt), "model-info.json")
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f)
    return None


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# ---------------------------------------------------------------- resume state

def read_state(sdir):
    p = os.path.join(sdir, "state", "latest.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        st = json.load(f)
    if not os.path.exists(os.path.join(sdir, "state", st["dir"], compat.STATE_WEIGHTS)):
        print("trainer: state %s is incomplete; starting the stage afresh" % p, file=sys.stderr)
        return None
    return st


def save_state(sdir, model, st):
    """state/epoch-NNNN/{model[._]weights.h5, optimizer.npz}, then state/latest.json (atomic),
    then older epoch folders are removed: the state of the last completed epoch is kept."""
    root = os.path.join(sdir, "state")
    name = "epoch-%04d" % st["epoch"]
    d = os.path.join(root, name)
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
    fsutil.write_json(os.path.join(root, "latest.json"), st)
    for old in glob.glob(os.path.join(root, "epoch-*")):
        if os.path.basename(old) != name:
            fsutil.remove(old)


def restore_state(sdir, model, st):
    d = os.path.join(sdir, "state", st["dir"])
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


# ---------------------------------------------------------------- callback

class StageCallback(keras.callbacks.Callback):
    def __init__(self, sdir, rows, st, info, images_per_epoch):
        super(StageCallback, self).__init__()
        self.sdir = sdir
        self.rows = rows
        self.st = st
        self.info = info
        self.images_per_epoch = images_per_epoch
        self.t_epoch = None
        self.t_val = None
        self.t_attempt = time.time()

    def _check(self):
        if stop_requested():
            raise Preempted()

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_test_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_begin(self, epoch, logs=None):
        self._check()
        self.t_epoch = time.time()
        self.t_val = None

    def on_test_begin(self, logs=None):
        if self.t_epoch is not None and self.t_val is None:
            self.t_val = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.time()
        st = self.st
        st["train_time_s"] = st.get("train_time_s", 0.0) + ((self.t_val or now) - self.t_epoch)
        st["train_images"] = st.get("train_images", 0) + self.images_per_epoch
        st["wall_time_s"] = st.get("wall_time_s", 0.0) + (now - self.t_attempt)
        self.t_attempt = now
        row = {
            "epoch": epoch + 1,
            "loss": _float(logs.get("loss")),
            "accuracy": _float(logs.get("accuracy")),
            "val_loss": _float(logs.get("val_loss")),
            "val_accuracy": _float(logs.get("val_accuracy")),
            "lr": compat.learning_rate(self.model.optimizer),
        }
        self.rows.append(row)
        fsutil.write_csv(os.path.join(self.sdir, "history.csv"), HISTORY_HEADER, self.rows)
        va = row["val_accuracy"]
        if st.get("best_val_accuracy") is None or va > st["best_val_accuracy"]:
            st["best_val_accuracy"] = va
            st["best_val_loss"] = row["val_loss"]
            st["best_epoch"] = epoch + 1
            write_checkpoint(self.model, os.path.join(self.sdir, "checkpoints", "best" + compat.MODEL_EXT),
                             self.info)
        st["epoch"] = epoch + 1
        save_state(self.sdir, self.model, st)
        self._check()


def write_checkpoint(model, path, info):
    fsutil.save_with(path, lambda tmp: compat.save_model(model, tmp))
    fsutil.write_json(os.path.join(os.path.dirname(path), "model-info.json"), info)


# ---------------------------------------------------------------- the stage

def _seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def load_data(spec):
    d = spec["data"]
    tr = data.list_images(d["train"], "train")
    va = data.list_images(d["val"], "val")
    if tr[2] != va[2]:
        raise InputError("train classes %s and val classes %s differ (folders %s, %s)"
                         % (tr[2], va[2], d["train"], d["val"]))
    return tr, va


def model_info(spec, class_names):
    return {
        "backbone": spec["model"]["backbone"],
        "image_size": [int(v) for v in spec["data"]["image_size"]],
        "class_names": class_names,
        "num_classes": len(class_names),
        "output": "logit" if len(class_names) == 2 else "softmax",
        "preprocessing": "keras.applications preprocess_input of the backbone",
        "format": compat.MODEL_FORMAT,
        "tensorflow_version": compat.TF_VERSION,
        "keras_version": compat.KERAS_VERSION,
    }


def run(spec, stage_name, run_dir):
    st_spec = None
    for s in spec["stages"]:
        if s["name"] == stage_name:
            st_spec = s
    if st_spec is None:
        raise InputError("spec has no stage %r" % stage_name)
    sdir = stage_dir(run_dir, stage_name)
    os.makedirs(os.path.join(sdir, "checkpoints"), exist_ok=True)
    seed = int(spec.get("seed", 42))
    _seed(seed)
    (tr_paths, tr_labels, class_names), (va_paths, va_labels, _) = load_data(spec)
    n_classes = len(class_names)
    info = model_info(spec, class_names)
    d = spec["data"]
    image_size = d["image_size"]
    compat.set_mixed_precision(bool(spec["training"].get("mixed_precision")))

    gpus = int(st_spec.get("gpus") or 1)
    if gpus > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    batch = int(d["batch_size"]) * replicas  # batch_size is per GPU

    state = read_state(sdir)
    init_ckpt = None
    init_record = None
    if st_spec.get("init_from"):
        init_dir = stage_dir(run_dir, st_spec["init_from"])
        init_ckpt = checkpoint_path(init_dir, "best")
        if not os.path.exists(init_ckpt):
            raise InputError("stage %r starts from stage %r, whose best checkpoint %s does not exist; "
                             "run that stage first" % (stage_name, st_spec["init_from"], init_ckpt))
        prev = read_model_info(init_ckpt)
        if prev and prev.get("class_names") != class_names:
            raise InputError("stage %r: classes %s differ from those of %s (%s)"
                             % (stage_name, class_names, init_ckpt, prev.get("class_names")))
        # Recorded in metrics.json, so anyone can check which file this stage started from
        # (its digest is that of the fetched stages/<init_from>/checkpoints/best.*).
        init_record = {"path": os.path.relpath(init_ckpt, run_dir),
                       "sha256": weights.file_digest(init_ckpt, "sha256")}
        print("trainer: stage %s: starting from %s (sha256 %s)"
              % (stage_name, init_record["path"], init_record["sha256"]), file=sys.stderr)
    weights_path = None
    if init_ckpt is None and state is None:
        weights_path = weights.resolve(spec["model"])

    with strategy.scope():
        if init_ckpt:
            model = compat.load_model(init_ckpt)
        else:
            model = mdl.build(spec["model"], image_size, n_classes, weights_path)
        mdl.set_trainable(model, st_spec.get("unfreeze_layers", 0))
        mdl.compile_model(model, st_spec["optimizer"], n_classes)
        if state:
            restore_state(sdir, model, state)

    rows = []
    st = {"epoch": 0, "best_val_accuracy": None, "best_val_loss": None, "best_epoch": None,
          "train_time_s": 0.0, "train_images": 0, "wall_time_s": 0.0, "attempts": 0}
    if state:
        st.update(state)
        done = int(state["epoch"])
        for r in fsutil.read_csv(os.path.join(sdir, "history.csv")):
            try:
                if int(r["epoch"]) <= done:
                    rows.append(r)
            except (KeyError, ValueError):
                pass
        rows = rows[:done]
        fsutil.write_csv(os.path.join(sdir, "history.csv"), HISTORY_HEADER, rows)
        print("trainer: stage %s: resuming after epoch %d" % (stage_name, done), file=sys.stderr)
    else:
        # A fresh start: no rows and no resume state from some older attempt.
        fsutil.write_csv(os.path.join(sdir, "history.csv"), HISTORY_HEADER, [])
    st["attempts"] = int(st.get("attempts", 0)) + 1
    initial_epoch = int(st["epoch"])
    epochs = int(st_spec["epochs"])

    spe = int(st_spec.get("steps_per_epoch") or 0)
    vsteps = int(st_spec.get("validation_steps") or 0)
    train_ds = data.make_dataset(tr_paths, tr_labels, n_classes, image_size, batch, spec["model"]["backbone"],
                                 training=True, seed=seed, shuffle_buffer=d.get("shuffle_buffer", 1000),
                                 cache=bool(d.get("cache")), aug=spec.get("augment"), repeat=spe > 0)
    val_ds = data.make_dataset(va_paths, va_labels, n_classes, image_size, batch, spec["model"]["backbone"],
                               cache=bool(d.get("cache")), repeat=vsteps > 0, take_batches=vsteps)
    images_per_epoch = spe * batch if spe > 0 else len(tr_paths)

    t0 = time.time()
    if initial_epoch < epochs:
        if stop_requested():
            raise Preempted()
        cb = StageCallback(sdir, rows, st, info, images_per_epoch)
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=spe if spe > 0 else None, callbacks=[cb], verbose=2)
        t0 = cb.t_attempt
    st["wall_time_s"] = st.get("wall_time_s", 0.0) + (time.time() - t0)

    final = os.path.join(sdir, "checkpoints", "final" + compat.MODEL_EXT)
    write_checkpoint(model, final, info)
    best = checkpoint_path(sdir, "best")
    last = rows[-1] if rows else {}
    metrics = {
        "stage": stage_name,
        "best_val_accuracy": st.get("best_val_accuracy"),
        "best_val_loss": st.get("best_val_loss"),
        "best_epoch": st.get("best_epoch"),
        "final_val_accuracy": _float(last.get("val_accuracy")) if last else None,
        "final_val_loss": _float(last.get("val_loss")) if last else None,
        "epochs_run": len(rows),
        "epochs": epochs,
        "attempts": st["attempts"],
        "wall_time_s": round(st["wall_time_s"], 3),
        "train_images_per_second": (round(st["train_images"] / st["train_time_s"], 3)
                                    if st.get("train_time_s") else None),
        "tensorflow_version": compat.TF_VERSION,
        "keras_version": compat.KERAS_VERSION,
        "gpus": compat.gpu_names(),
        "replicas": replicas,
        "global_batch_size": batch,
        "mixed_precision": bool(spec["training"].get("mixed_precision")),
        "class_names": class_names,
        "seed": seed,
        "backbone": spec["model"]["backbone"],
        "init_from": st_spec.get("init_from") or "",
        "init_checkpoint": init_record,
        "checkpoint_format": compat.MODEL_FORMAT,
        "checkpoints": {
            "best": os.path.relpath(best, run_dir),
            "final": os.path.relpath(final, run_dir),
        },
        "train_images": len(tr_paths),
        "val_images": len(va_paths),
    }
    fsutil.write_json(os.path.join(sdir, "metrics.json"), metrics)
    evaluate(spec, stage_name, run_dir)
    return metrics


# ---------------------------------------------------------------- evaluate / predict

def _probs(model, x):
    out = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    if out.shape[-1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    return out


def evaluate(spec, stage_name, run_dir):
    sdir = stage_dir(run_dir, stage_name)
    ckpt = checkpoint_path(sdir, "best")
    if not os.path.exists(ckpt):
        raise InputError("stage %r has no best checkpoint at %s; train it first" % (stage_name, ckpt))
    (_, _, class_names), (va_paths, va_labels, _) = load_data(spec)
    info = read_model_info(ckpt) or model_info(spec, class_names)
    if info.get("class_names") != class_names:
        raise InputError("classes in %s (%s) differ from the checkpoint's (%s)"
                         % (spec["data"]["val"], class_names, info.get("class_names")))
    model = compat.load_model(ckpt)
    n = len(class_names)
    ds = data.make_dataset(va_paths, va_labels, n, info["image_size"], int(spec["data"]["batch_size"]),
                           info["backbone"])
    probs = _probs(model, ds)
    pred = probs.argmax(axis=1)
    truth = np.asarray(va_labels)
    cm = np.zeros((n, n), dtype=int)
    for t, p in zip(truth, pred):
        cm[t, p] += 1
    per_class = {}
    for i, c in enumerate(class_names):
        tot = int(cm[i].sum())
        per_class[c] = (float(cm[i, i]) / tot) if tot else None
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(truth)), truth], eps, 1.0))))
    ev = {
        "stage": stage_name,
        "checkpoint": os.path.relpath(ckpt, run_dir),
        "class_names": class_names,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class (class_names order)",
        "per_class_accuracy": per_class,
        "accuracy": float((pred == truth).mean()) if len(truth) else None,
        "loss": loss,
        "num_images": int(len(truth)),
    }
    fsutil.write_json(os.path.join(sdir, "evaluation.json"), ev)
    return ev


def predict(model_path, image_paths, spec=None):
    if not os.path.exists(model_path):
        raise InputError("model checkpoint %s does not exist" % model_path)
    info = read_model_info(model_path)
    if info is None:
        if spec is None:
            raise InputError("no model-info.json beside %s; pass --spec so the backbone, image size "
                             "and classes are known" % model_path)
        _, _, class_names = data.list_images(spec["data"]["train"], "train")
        info = model_info(spec, class_names)
    x = data.load_image_batch(image_paths, info["image_size"], info["backbone"])
    try:
        model = compat.load_model(model_path)
    except Exception as e:
        raise InputError("cannot load model %s: %s" % (model_path, e))
    probs = _probs(model, x)
    out = []
    for p, row in zip(image_paths, probs):
        i = int(row.argmax())
        out.append((p, info["class_names"][i], float(row[i])))
    return out

