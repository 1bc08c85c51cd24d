"""Evaluating a stage's best checkpoint on the validation set, and predicting images."""

import os

import numpy as np

from . import InputError, compat, data, fsutil
from .checkpoints import checkpoint_path, model_info, model_info_beside, read_model_info
from .spec import stage_paths


def load_data(spec):
    d = spec["data"]
    tr = data.list_images(d["train"], "train")
    va = data.list_images(d["val"], "val")
    if tr[2] != va[2]:
        raise InputError("train classes %s and val classes %s differ (folders %s, %s)"
                         % (tr[2], va[2], d["train"], d["val"]))
    return tr, va


def probabilities(model, x):
    out = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    if out.shape[-1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    return out


def evaluate(spec, stage_name, run_dir):
    paths = stage_paths(spec, stage_name, run_dir)
    ckpt = checkpoint_path(paths["best_checkpoint"])
    if not os.path.exists(ckpt):
        raise InputError("stage %r has no best checkpoint at %s; train it first" % (stage_name, ckpt))
    (_, _, class_names), (va_paths, va_labels, _) = load_data(spec)
    info = read_model_info(paths["model_info"]) or model_info(spec, class_names)
    if info.get("class_names") != class_names:
        raise InputError("classes in %s (%s) differ from the checkpoint's (%s)"
                         % (spec["data"]["val"], class_names, info.get("class_names")))
    model = compat.load_model(ckpt)
    n = len(class_names)
    ds = data.make_dataset(va_paths, va_labels, n, info["image_size"], int(spec["data"]["batch_size"]),
                           info["backbone"])
    probs = probabilities(model, ds)
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
    fsutil.write_json(paths["evaluation"], ev)
    return ev


def predict(model_path, image_paths, spec=None):
    if not os.path.exists(model_path):
        raise InputError("model checkpoint %s does not exist" % model_path)
    info = model_info_beside(model_path)
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
    probs = probabilities(model, x)
    out = []
    for p, row in zip(image_paths, probs):
        i = int(row.argmax())
        out.append((p, info["class_names"][i], float(row[i])))
    return out
