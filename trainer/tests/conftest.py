"""Fixtures: a tiny synthetic image data set (horizontal vs vertical stripes plus noise) and
helpers to write a resolved spec and run train.py as the job would."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

TRAINER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PY = os.path.join(TRAINER, "train.py")
sys.path.insert(0, TRAINER)


def stripes(kind, size, rng):
    period = rng.randint(4, 8)
    phase = rng.randint(0, period)
    idx = np.arange(size)
    band = (((idx + phase) // (period // 2)) % 2).astype(np.float32)
    if kind == "horizontal":
        img = np.tile(band[:, None], (1, size))
    elif kind == "vertical":
        img = np.tile(band[None, :], (size, 1))
    else:  # checker
        img = np.logical_xor(band[:, None] > 0, band[None, :] > 0).astype(np.float32)
    color = rng.uniform(100, 255, size=3)
    img = img[:, :, None] * color[None, None, :] + rng.normal(0, 25, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(root, per_class, size=32, seed=0, classes=("horizontal", "vertical"), ext=".png"):
    rng = np.random.RandomState(seed)
    for c in classes:
        d = os.path.join(root, c)
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(stripes(c, size, rng)).save(os.path.join(d, "%s_%03d%s" % (c, i, ext)))
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    train = make_images(str(root / "train"), 24, seed=1)
    val = make_images(str(root / "val"), 10, seed=2)
    return {"train": train, "val": val}


def stage_paths(name):
    """hpctl's stages[].paths for a stage (experiment/layout.go), relative to the run dir."""
    d = "stages/" + name
    return {"dir": d, "history": d + "/history.csv", "metrics": d + "/metrics.json",
            "evaluation": d + "/evaluation.json", "checkpoints": d + "/checkpoints",
            "best_checkpoint": d + "/checkpoints/best", "final_checkpoint": d + "/checkpoints/final",
            "model_info": d + "/checkpoints/model-info.json", "state": d + "/state",
            "tensorboard": d + "/tensorboard"}


def make_spec(run_dir, data, backbone="tinycnn", weights="none", size=32, frozen_epochs=2,
              finetune_epochs=3, weights_cache="", steps=0, **model_extra):
    os.makedirs(run_dir, exist_ok=True)
    spec = {
        "name": "t",
        "seed": 42,
        "data": {"train": data["train"], "val": data["val"], "image_size": [size, size],
                 "batch_size": 8, "cache": False, "shuffle_buffer": 100},
        "model": dict({"backbone": backbone, "weights": weights,
                       "weights_cache": weights_cache or os.path.join(run_dir, "wcache"),
                       "allow_download": False, "dropout": 0.0}, **model_extra),
        "augment": {"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
                    "horizontal_flip": True, "vertical_flip": False},
        "training": {"mixed_precision": False, "cpu_fallback": False, "tensorboard": False},
        "stages": [
            {"name": "frozen", "depends_on": [], "init_from": "", "unfreeze_layers": 0,
             "epochs": frozen_epochs, "steps_per_epoch": steps, "validation_steps": 0,
             "optimizer": {"name": "adam", "learning_rate": 0.01}, "gpus": 0, "command": [],
             "paths": stage_paths("frozen")},
            {"name": "finetune", "depends_on": ["frozen"], "init_from": "frozen", "unfreeze_layers": -1,
             "epochs": finetune_epochs, "steps_per_epoch": steps, "validation_steps": 0,
             "optimizer": {"name": "adam", "learning_rate": 0.003}, "gpus": 0, "command": [],
             "paths": stage_paths("finetune")},
        ],
    }
    path = os.path.join(run_dir, "spec.resolved.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path, spec


def write_spec(path, spec):
    with open(path, "w") as f:
        json.dump(spec, f)


def env():
    e = dict(os.environ)
    e["TF_CPP_MIN_LOG_LEVEL"] = "2"
    e["CUDA_VISIBLE_DEVICES"] = ""
    e["PYTHONUNBUFFERED"] = "1"
    return e


def train_cmd(spec_path, stage, run_dir, command="train"):
    return [sys.executable, TRAIN_PY, command, "--spec", spec_path, "--stage", stage, "--run-dir", run_dir]


def run(args, cwd=None, timeout=600):
    return subprocess.run(args, cwd=cwd or "/", env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
