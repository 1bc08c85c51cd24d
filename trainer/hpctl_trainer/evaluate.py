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
    return probabilities_of(np.asarray(model.predict(x, verbose=0), dtype=np.float64))


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


# PREDICT_CHUNK images are decoded, predicted and reported at a time: one model load for
# all images, memory bounded whatever their number, and each chunk's lines reach the reader
# (hpctl following a job's output) as soon as they are known.
PREDICT_CHUNK = 64


def predict(model_path, image_paths, spec=None):
    """[(path, label, probability of that label)] for every image (the original shape)."""
    return [(r["image"], r["label"], r["probability"]) for r in predict_records(model_path, image_paths, spec)]


def predict_records(model_path, image_paths, spec=None):
    """Yields one dict per image, in order: image, label, class_index, probability (of
    label), probabilities (per class name), logit (the Dense(1) output of a two-class
    model, None for softmax). A positive logit is class_names[1]: classes are the sorted
    folder names, as Keras's image_dataset_from_directory and flow_from_directory order
    them, so the published notebook's `preds[0][0] > 0` is its second class."""
    if not os.path.exists(model_path):
        raise InputError("model checkpoint %s does not exist" % model_path)
    info = model_info_beside(model_path)
    if info is None:
        if spec is None:
            raise InputError("no model-info.json beside %s; pass --spec so the backbone, image size "
                             "and classes are known" % model_path)
        _, _, class_names = data.list_images(spec["data"]["train"], "train")
        info = model_info(spec, class_names)
    names = info["class_names"]
    # Every image is checked before the model loads (seconds): a bad one costs nothing.
    for p in image_paths:
        if not os.path.isfile(p):
            raise InputError("image %s does not exist" % p)
    try:
        model = compat.load_model(model_path)
    except Exception as e:
        raise InputError("cannot load model %s: %s" % (model_path, e))
    for start in range(0, len(image_paths), PREDICT_CHUNK):
        chunk = image_paths[start:start + PREDICT_CHUNK]
        x = data.load_image_batch(chunk, info["image_size"], info["backbone"])
        raw = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
        probs = probabilities_of(raw)
        for j, (p, row) in enumerate(zip(chunk, probs)):
            # Two classes: the logit's sign decides, as the notebook's rule (a logit of
            # 0 is class 0; argmax of a rounded sigmoid could say otherwise for tiny ones).
            i = int(raw[j, 0] > 0) if raw.shape[-1] == 1 else int(row.argmax())
            yield {
                "image": p,
                "label": names[i],
                "class_index": i,
                "probability": float(row[i]),
                "probabilities": dict((n, float(v)) for n, v in zip(names, row)),
                "logit": float(raw[j, 0]) if raw.shape[-1] == 1 else None,
            }


def probabilities_of(out):
    """Per-class probabilities of model outputs: a Dense(1) logit x gives
    [1 - sigmoid(x), sigmoid(x)]; softmax rows are already probabilities."""
    if out.shape[-1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    return out
