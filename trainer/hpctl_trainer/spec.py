"""Reading spec.resolved.json (docs/run-directory.md) and checking what the trainer needs."""

import json
import os

from . import InputError

BACKBONES = ("resnet50", "mobilenetv2", "efficientnetb0", "tinycnn")
OPTIMIZERS = ("rmsprop", "adam", "sgd")


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


def load(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError("cannot read spec %s: %s" % (path, e))
    if not isinstance(spec, dict):
        raise InputError("spec %s: not a JSON object" % path)
    for key in ("data", "model", "stages"):
        if key not in spec:
            raise InputError("spec %s: missing key %r" % (path, key))
    spec.setdefault("seed", 42)
    spec.setdefault("augment", {})
    spec.setdefault("training", {})
    d = spec["data"]
    for key in ("train", "val"):
        if not d.get(key):
            raise InputError("spec: data.%s is empty" % key)
        d[key] = expand(d[key])
    d.setdefault("image_size", [224, 224])
    d.setdefault("batch_size", 8)
    d.setdefault("cache", False)
    d.setdefault("shuffle_buffer", 1000)
    if len(d["image_size"]) != 2 or min(d["image_size"]) < 1:
        raise InputError("spec: data.image_size must be [height, width], got %r" % (d["image_size"],))
    if int(d["batch_size"]) < 1:
        raise InputError("spec: data.batch_size must be >= 1")
    m = spec["model"]
    m.setdefault("backbone", "resnet50")
    m.setdefault("weights", "imagenet")
    m.setdefault("weights_cache", "$HOME/.cache/hpctl/weights")
    m.setdefault("allow_download", False)
    m.setdefault("dropout", 0.0)
    m["backbone"] = str(m["backbone"]).lower()
    if m["backbone"] not in BACKBONES:
        raise InputError("spec: model.backbone %r is not one of %s" % (m["backbone"], ", ".join(BACKBONES)))
    m["weights_cache"] = expand(m["weights_cache"])
    if m["weights"] not in ("imagenet", "none", None, ""):
        m["weights"] = expand(m["weights"])
    a = spec["augment"]
    for key, val in (("rotation", 10.0), ("zoom", 0.1), ("width_shift", 0.1),
                     ("height_shift", 0.1), ("horizontal_flip", True), ("vertical_flip", False)):
        a.setdefault(key, val)
    spec["training"].setdefault("mixed_precision", False)
    names = [s.get("name") for s in spec["stages"]]
    for s in spec["stages"]:
        s.setdefault("init_from", "")
        s.setdefault("unfreeze_layers", 0)
        s.setdefault("epochs", 1)
        s.setdefault("steps_per_epoch", 0)
        s.setdefault("validation_steps", 0)
        s.setdefault("optimizer", {"name": "rmsprop", "learning_rate": 0.001})
        s.setdefault("gpus", 1)
        s.setdefault("command", [])
        if s["init_from"] and s["init_from"] not in names:
            raise InputError("spec: stage %r: init_from %r is not a stage" % (s["name"], s["init_from"]))
        opt = s["optimizer"]
        opt["name"] = str(opt.get("name", "rmsprop")).lower()
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
