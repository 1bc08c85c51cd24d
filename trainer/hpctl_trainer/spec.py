"""Reading spec.resolved.json (docs/run-directory.md) and checking what the trainer needs.

hpctl writes the resolved spec with every default filled in; the defaults live on the Go
side only (experiment.Default), so a key missing here is an error, never a silent default
that could drift from hpctl's."""

import json
import os

from . import InputError
from .backbones import backbone_names

OPTIMIZERS = ("rmsprop", "adam", "sgd")

# Keys the trainer reads, by section; each must be present in the resolved spec.
REQUIRED = {
    "data": ("train", "val", "image_size", "batch_size", "cache", "shuffle_buffer"),
    "model": ("backbone", "weights", "weights_cache", "allow_download", "dropout"),
    "augment": ("rotation", "zoom", "width_shift", "height_shift", "horizontal_flip", "vertical_flip"),
    "training": ("mixed_precision", "cpu_fallback", "tensorboard"),
}
STAGE_REQUIRED = ("name", "init_from", "unfreeze_layers", "epochs", "steps_per_epoch",
                  "validation_steps", "optimizer", "gpus", "paths")
# A stage's output files and folders, relative to the run directory; checkpoints without
# the extension, which depends on the Keras version.
PATH_KEYS = ("dir", "history", "metrics", "evaluation", "checkpoints", "best_checkpoint",
             "final_checkpoint", "model_info", "state", "tensorboard")


def expand(path):
    """Expand a leading ~/ or $HOME/ (other $ stay literal, as the contract says)."""
    if not isinstance(path, str):
        return path
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if path == "~" or path == "$HOME" or path == "${HOME}":
        return home
    for prefix in ("~/", "$HOME/", "${HOME}/"):
        if path.startswith(prefix):
            return os.path.join(home, path[len(prefix):])
    return path


def is_checkpoint_path(init_from):
    """init_from names a checkpoint file (an absolute path, or one under ~/ or $HOME/)
    rather than a stage of the spec."""
    return isinstance(init_from, str) and os.path.isabs(expand(init_from))


def _missing(path, key):
    return InputError("%s: %s missing; was it written by hpctl?" % (os.path.basename(path), key))


def _object(path, parent, key, where):
    if key not in parent:
        raise _missing(path, where)
    if not isinstance(parent[key], dict):
        raise InputError("%s: %s is not an object" % (os.path.basename(path), where))
    return parent[key]


def load(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError("cannot read spec %s: %s" % (path, e))
    if not isinstance(spec, dict):
        raise InputError("spec %s: not a JSON object" % path)
    if "seed" not in spec:
        raise _missing(path, "seed")
    for section, keys in sorted(REQUIRED.items()):
        obj = _object(path, spec, section, section)
        for key in keys:
            if key not in obj:
                raise _missing(path, "%s.%s" % (section, key))
    if "stages" not in spec:
        raise _missing(path, "stages")
    if not isinstance(spec["stages"], list) or not spec["stages"]:
        raise InputError("%s: stages must be a non-empty list" % os.path.basename(path))
    for i, s in enumerate(spec["stages"]):
        if not isinstance(s, dict):
            raise InputError("%s: stages[%d] is not an object" % (os.path.basename(path), i))
        for key in STAGE_REQUIRED:
            if key not in s:
                raise _missing(path, "stages[%d].%s" % (i, key))
        p = _object(path, s, "paths", "stages[%d].paths" % i)
        for key in PATH_KEYS:
            if not isinstance(p.get(key), str) or not p[key]:
                raise _missing(path, "stages[%d].paths.%s" % (i, key))
        opt = _object(path, s, "optimizer", "stages[%d].optimizer" % i)
        for key in ("name", "learning_rate"):
            if key not in opt:
                raise _missing(path, "stages[%d].optimizer.%s" % (i, key))

    d = spec["data"]
    for key in ("train", "val"):
        if not d[key]:
            raise InputError("spec: data.%s is empty" % key)
        d[key] = expand(d[key])
    if len(d["image_size"]) != 2 or min(d["image_size"]) < 1:
        raise InputError("spec: data.image_size must be [height, width], got %r" % (d["image_size"],))
    if int(d["batch_size"]) < 1:
        raise InputError("spec: data.batch_size must be >= 1")
    m = spec["model"]
    m["backbone"] = str(m["backbone"]).lower()
    names = backbone_names()
    if m["backbone"] not in names:
        raise InputError("spec: model.backbone %r is not one of %s" % (m["backbone"], ", ".join(names)))
    m["weights_cache"] = expand(m["weights_cache"])
    if m["weights"] not in ("imagenet", "none", None, ""):
        m["weights"] = expand(m["weights"])
    stage_names = [s["name"] for s in spec["stages"]]
    for s in spec["stages"]:
        if s["init_from"] and is_checkpoint_path(s["init_from"]):
            # A checkpoint file (hpctl resolves RUN:STAGE to one at submit).
            s["init_from"] = expand(s["init_from"])
        elif s["init_from"] and s["init_from"] not in stage_names:
            raise InputError("spec: stage %r: init_from %r is neither a stage nor an absolute checkpoint path"
                             % (s["name"], s["init_from"]))
        opt = s["optimizer"]
        opt["name"] = str(opt["name"]).lower()
        if opt["name"] not in OPTIMIZERS:
            raise InputError("spec: stage %r: optimizer %r is not one of %s"
                             % (s["name"], opt["name"], ", ".join(OPTIMIZERS)))
    return spec


def stage(spec, name):
    for s in spec["stages"]:
        if s.get("name") == name:
            return s
    raise InputError("spec has no stage %r (stages: %s)"
                     % (name, ", ".join(str(s.get("name")) for s in spec["stages"])))


def stage_paths(spec, name, run_dir):
    """The stage's output paths (stages[].paths), absolute: relative ones are joined to the
    run directory."""
    rel = stage(spec, name)["paths"]
    return {k: os.path.join(run_dir, rel[k]) for k in PATH_KEYS}
