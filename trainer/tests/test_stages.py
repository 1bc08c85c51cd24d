"""End to end: the two stages as the job runs them (subprocess, other cwd), outputs, predict."""

import csv
import json
import os
import sys
import time

import pytest

from conftest import make_images, make_spec, run, train_cmd, TRAIN_PY
from hpctl_trainer.weights import file_digest

METRIC_KEYS = {"best_val_accuracy", "best_val_loss", "final_val_accuracy", "final_val_loss", "epochs_run",
               "wall_time_s", "train_images_per_second", "tensorflow_version", "keras_version", "gpus",
               "class_names", "seed", "checkpoints", "checkpoint_format"}


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_stage_run(dataset, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=2, finetune_epochs=4)
    results = {}
    for stage in ("frozen", "finetune"):
        r = run(train_cmd(spec_path, stage, run_dir), cwd=run_dir)
        results[stage] = r
        assert r.returncode == 0, r.stdout + r.stderr
    return run_dir, spec, results


def test_history_rows(two_stage_run):
    run_dir, spec, _ = two_stage_run
    for stage, n in (("frozen", 2), ("finetune", 4)):
        rows = read_history(os.path.join(run_dir, "stages", stage, "history.csv"))
        assert [int(r["epoch"]) for r in rows] == list(range(1, n + 1))
        assert list(rows[0].keys()) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
        for r in rows:
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                float(r[k])
            assert 0.0 <= float(r["val_accuracy"]) <= 1.0
        # time: when each epoch ended, in order, on this machine's clock.
        times = [float(r["time"]) for r in rows]
        assert times == sorted(times) and time.time() - 3600 < times[0] <= time.time()
        assert abs(float(rows[0]["lr"]) - spec["stages"][0 if stage == "frozen" else 1]["optimizer"]["learning_rate"]) < 1e-6
        # training.tensorboard is off by default: no event files.
        assert not os.path.exists(os.path.join(run_dir, "stages", stage, "tensorboard"))


def test_model_learns_and_metrics_complete(two_stage_run):
    run_dir, spec, _ = two_stage_run
    m = json.load(open(os.path.join(run_dir, "stages", "finetune", "metrics.json")))
    assert METRIC_KEYS <= set(m), METRIC_KEYS - set(m)
    assert m["best_val_accuracy"] >= 0.9, m
    assert m["epochs_run"] == 4
    assert m["class_names"] == ["horizontal", "vertical"]
    assert m["seed"] == 42
    assert m["train_images_per_second"] > 0
    assert m["wall_time_s"] > 0
    assert m["init_from"] == "frozen"
    # The stage records which file it started from: the frozen stage's best checkpoint.
    frozen = json.load(open(os.path.join(run_dir, "stages", "frozen", "metrics.json")))
    assert frozen["init_checkpoint"] is None
    assert m["init_checkpoint"]["path"] == frozen["checkpoints"]["best"]
    assert m["init_checkpoint"]["sha256"] == file_digest(os.path.join(run_dir, frozen["checkpoints"]["best"]), "sha256")
    for which in ("best", "final"):
        assert os.path.isfile(os.path.join(run_dir, m["checkpoints"][which]))
    rows = read_history(os.path.join(run_dir, "stages", "finetune", "history.csv"))
    assert m["best_val_accuracy"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows))
    ev = json.load(open(os.path.join(run_dir, "stages", "finetune", "evaluation.json")))
    assert ev["class_names"] == ["horizontal", "vertical"]
    cm = ev["confusion_matrix"]
    assert sum(map(sum, cm)) == 20 and [sum(r) for r in cm] == [10, 10]
    assert ev["accuracy"] == pytest.approx(m["best_val_accuracy"], abs=1e-6)
    assert set(ev["per_class_accuracy"]) == {"horizontal", "vertical"}


def test_init_from_a_checkpoint_path(two_stage_run, dataset, tmp_path):
    # Another run's checkpoint, by absolute path (hpctl resolves RUN:STAGE to one): the
    # stage starts from it and records its absolute path and digest.
    run_dir, _, _ = two_stage_run
    frozen = json.load(open(os.path.join(run_dir, "stages", "frozen", "metrics.json")))
    ckpt = os.path.join(run_dir, frozen["checkpoints"]["best"])
    other = str(tmp_path / "other")
    spec_path, spec = make_spec(other, dataset, frozen_epochs=1)
    spec["stages"] = spec["stages"][1:]
    spec["stages"][0].update(depends_on=[], init_from=ckpt, epochs=1)
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    r = run(train_cmd(spec_path, "finetune", other), cwd=other)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.load(open(os.path.join(other, "stages", "finetune", "metrics.json")))
    assert m["init_checkpoint"] == {"path": ckpt, "sha256": file_digest(ckpt, "sha256")}
    assert m["init_from"] == ckpt

    # A checkpoint that is not there is bad input (exit 2), named.
    spec["stages"][0]["init_from"] = ckpt + ".missing"
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    r = run(train_cmd(spec_path, "finetune", other), cwd=other)
    assert r.returncode == 2 and "starts from the checkpoint %s.missing, which does not exist" % ckpt in r.stderr, r.stderr
    # Neither a stage nor an absolute path.
    spec["stages"][0]["init_from"] = "nope"
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    r = run(train_cmd(spec_path, "finetune", other), cwd=other)
    assert r.returncode == 2 and "neither a stage nor an absolute checkpoint path" in r.stderr, r.stderr


def test_best_checkpoint_predicts(two_stage_run, dataset, tmp_path):
    run_dir, _, _ = two_stage_run
    m = json.load(open(os.path.join(run_dir, "stages", "finetune", "metrics.json")))
    best = os.path.join(run_dir, m["checkpoints"]["best"])
    images = []
    for c in ("horizontal", "vertical"):
        d = os.path.join(dataset["val"], c)
        images += [os.path.join(d, f) for f in sorted(os.listdir(d))[:5]]
    r = run([sys.executable, TRAIN_PY, "predict", "--model", best] + images,
            cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(images)
    right = 0
    for img, line in zip(images, lines):
        path, label, prob = line.split("\t")
        assert path == img
        assert 0.5 <= float(prob) <= 1.0
        right += label == os.path.basename(os.path.dirname(img))
    assert right >= 9


def test_predict_jsonl(two_stage_run, dataset, tmp_path):
    """--jsonl: one object per image, in order, then the end mark; the label follows the
    logit's sign (positive: class_names[1], the notebook's `preds[0][0] > 0`), and the
    probabilities are the logit's sigmoid."""
    import math
    run_dir, _, _ = two_stage_run
    m = json.load(open(os.path.join(run_dir, "stages", "finetune", "metrics.json")))
    best = os.path.join(run_dir, m["checkpoints"]["best"])
    names = m["class_names"]
    images = []
    for c in names:
        d = os.path.join(dataset["val"], c)
        images += [os.path.join(d, f) for f in sorted(os.listdir(d))[:4]]
    lst = tmp_path / "images.txt"
    lst.write_text("\n".join(images[2:]) + "\n")
    r = run([sys.executable, TRAIN_PY, "predict", "--jsonl", "--model", best, "--image-list", str(lst)]
            + images[:2], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert lines[-1] == {"done": len(images)}
    recs = lines[:-1]
    assert [x["image"] for x in recs] == images
    right = 0
    for x in recs:
        assert set(x) == {"image", "label", "class_index", "probability", "probabilities", "logit"}
        p1 = 1.0 / (1.0 + math.exp(-x["logit"]))
        assert x["probabilities"][names[1]] == pytest.approx(p1, abs=1e-9)
        assert x["class_index"] == (1 if x["logit"] > 0 else 0)
        assert x["label"] == names[x["class_index"]]
        assert x["probability"] == pytest.approx(max(p1, 1 - p1), abs=1e-9)
        assert 0.5 <= x["probability"] <= 1.0
        right += x["label"] == os.path.basename(os.path.dirname(x["image"]))
    assert right >= len(images) - 1

    # A file that is no image: bad input (exit 2), named; no prediction line before it.
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    r = run([sys.executable, TRAIN_PY, "predict", "--jsonl", "--model", best, str(bad)], cwd=str(tmp_path))
    assert r.returncode == 2 and "cannot decode image %s" % bad in r.stderr, r.stderr
    assert r.stdout.strip() == ""


def test_evaluate_entry_point(two_stage_run):
    run_dir, _, _ = two_stage_run
    p = os.path.join(run_dir, "stages", "frozen", "evaluation.json")
    os.remove(p)
    r = run(train_cmd(os.path.join(run_dir, "spec.resolved.json"), "frozen", run_dir, command="evaluate"))
    assert r.returncode == 0, r.stderr
    assert json.load(open(p))["num_images"] == 20


def test_real_backbone_stages_and_three_classes(tmp_path):
    """mobilenetv2 (keras.applications) through both stages, softmax head with 3 classes,
    partial unfreezing and steps_per_epoch."""
    root = str(tmp_path)
    classes = ("checker", "horizontal", "vertical")
    data = {"train": make_images(os.path.join(root, "train"), 6, classes=classes, seed=3),
            "val": make_images(os.path.join(root, "val"), 3, classes=classes, seed=4)}
    run_dir = os.path.join(root, "run")
    spec_path, spec = make_spec(run_dir, data, backbone="mobilenetv2", frozen_epochs=1, finetune_epochs=1,
                                steps=2, dropout=0.2)
    spec["stages"][1]["unfreeze_layers"] = 10
    spec["stages"][1]["validation_steps"] = 1
    json.dump(spec, open(spec_path, "w"))
    for stage in ("frozen", "finetune"):
        r = run(train_cmd(spec_path, stage, run_dir), cwd=run_dir)
        assert r.returncode == 0, r.stdout + r.stderr
    ev = json.load(open(os.path.join(run_dir, "stages", "finetune", "evaluation.json")))
    assert len(ev["confusion_matrix"]) == 3 and ev["num_images"] == 9
    m = json.load(open(os.path.join(run_dir, "stages", "finetune", "metrics.json")))
    assert m["class_names"] == list(classes) and m["epochs_run"] == 1


def test_outputs_go_where_the_resolved_spec_says(dataset, tmp_path):
    """stages[].paths decide where every output goes (hpctl owns the run-dir layout): with
    non-default paths, the trainer writes exactly there and nothing under stages/; the
    second stage finds the first's best checkpoint and model-info through the first's entry."""
    from hpctl_trainer import compat

    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=1, finetune_epochs=1)
    for s, tag in zip(spec["stages"], ("x", "y")):
        s["paths"] = {"dir": "out/" + tag, "history": "out/%s/h.csv" % tag, "metrics": "m/%s.json" % tag,
                      "evaluation": "e/%s/eval.json" % tag, "checkpoints": "ck/" + tag,
                      "best_checkpoint": "ck/%s/top" % tag, "final_checkpoint": "ck/%s/last" % tag,
                      "model_info": "info/%s.json" % tag, "state": "st/" + tag, "tensorboard": "tb/" + tag}
    spec["training"]["tensorboard"] = compat.has_tensorboard()
    json.dump(spec, open(spec_path, "w"))
    for stage in ("frozen", "finetune"):
        r = run(train_cmd(spec_path, stage, run_dir), cwd=str(tmp_path))
        assert r.returncode == 0, r.stdout + r.stderr
    ext = compat.MODEL_EXT
    for tag in ("x", "y"):
        for rel in ("out/%s/h.csv" % tag, "m/%s.json" % tag, "e/%s/eval.json" % tag, "ck/%s/top%s" % (tag, ext),
                    "ck/%s/last%s" % (tag, ext), "info/%s.json" % tag, "st/%s/latest.json" % tag):
            assert os.path.exists(os.path.join(run_dir, rel)), rel
        assert not os.path.exists(os.path.join(run_dir, "ck", tag, "model-info.json"))
    assert not os.path.exists(os.path.join(run_dir, "stages"))
    m = json.load(open(os.path.join(run_dir, "m", "y.json")))
    assert m["init_checkpoint"]["path"] == "ck/x/top" + ext
    assert m["checkpoints"] == {"best": "ck/y/top" + ext, "final": "ck/y/last" + ext}
    assert json.load(open(os.path.join(run_dir, "e", "y", "eval.json")))["checkpoint"] == "ck/y/top" + ext
    assert json.load(open(os.path.join(run_dir, "info", "y.json")))["class_names"] == ["horizontal", "vertical"]
    rows = read_history(os.path.join(run_dir, "out", "y", "h.csv"))
    assert [int(r["epoch"]) for r in rows] == [1]
    # training.tensorboard: event files of both splits at each stage's tensorboard path,
    # holding the epoch's loss (TensorBoard's tag for it is epoch_loss). Where this Python
    # has no tensorboard package, test_tensorboard_missing covers the refusal instead.
    for tag in ("x", "y") if spec["training"]["tensorboard"] else ():
        for split in ("train", "validation"):
            d = os.path.join(run_dir, "tb", tag, split)
            events = [f for f in os.listdir(d) if f.startswith("events.out.tfevents.")] if os.path.isdir(d) else []
            assert events, "no TensorBoard events in " + d
            assert any(b"epoch_loss" in open(os.path.join(d, f), "rb").read() for f in events), d


def test_tensorboard_missing(dataset, tmp_path):
    """training.tensorboard with a Python that has no tensorboard package (recent
    tensorflow-cpu wheels leave it out) is bad input, said before any training: exit 2,
    nothing trained."""
    from hpctl_trainer import compat

    if compat.has_tensorboard():
        pytest.skip("this Python has tensorboard; test_outputs_go_where_the_resolved_spec_says writes events")
    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=1, finetune_epochs=1)
    spec["training"]["tensorboard"] = True
    json.dump(spec, open(spec_path, "w"))
    r = run(train_cmd(spec_path, "frozen", run_dir), cwd=str(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "training.tensorboard is true" in r.stderr and "pip install tensorboard" in r.stderr
    assert not os.path.exists(os.path.join(run_dir, "stages", "frozen", "history.csv"))

