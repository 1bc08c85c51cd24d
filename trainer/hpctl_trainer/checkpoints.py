"""Checkpoint files and the model-info.json written beside them."""

import json
import os

from . import compat, fsutil


def checkpoint_path(base):
    """base (a checkpoint path without extension) plus this Keras' extension, else whichever
    extension exists (a checkpoint written by another Keras)."""
    p = base + compat.MODEL_EXT
    if os.path.exists(p):
        return p
    for ext in (".keras", ".h5"):
        if os.path.exists(base + ext):
            return base + ext
    return p


def read_model_info(path):
    """model-info.json at path, or None when there is none."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def model_info_beside(ckpt):
    """model-info.json in the checkpoint's folder, where predict looks without a spec."""
    return read_model_info(os.path.join(os.path.dirname(ckpt), "model-info.json"))


def write_checkpoint(model, path, info, info_path):
    fsutil.save_with(path, lambda tmp: compat.save_model(model, tmp))
    fsutil.write_json(info_path, info)


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
