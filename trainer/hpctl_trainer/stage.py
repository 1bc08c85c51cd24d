"""Running one stage: seed, data, model (fresh, from another stage's best checkpoint, or
resumed), the training loop, then the final checkpoint, metrics.json and the evaluation."""

import os
import random
import sys
import time

import numpy as np

from . import InputError, Preempted, compat, data, distribute, fsutil, model as mdl, weights
from .callbacks import HISTORY_HEADER, StageCallback, stop_requested, to_float
from .checkpoints import checkpoint_path, model_info, model_info_beside, read_model_info, write_checkpoint
from .compat import tf
from .evaluate import evaluate, load_data
from .resume import read_state, restore_state
from .spec import is_checkpoint_path, stage as stage_spec, stage_paths


def _seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def check_gpus(stage_name, asked, cpu_fallback, seen=None):
    """Fails a stage that asked for GPUs and sees none, unless the spec allows the CPU.

    A runtime that was not given the GPUs (podman before 5 ignores --gpus), or an image
    whose TensorFlow has no CUDA, would otherwise train on the CPU for days, silently.
    """
    if asked <= 0:
        return
    if seen is None:
        seen = compat.gpu_names()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    given = "CUDA_VISIBLE_DEVICES=%s" % (visible if visible is not None else "(unset)")
    if not seen:
        if cpu_fallback:
            print("trainer: warning: stage %s asked for %d GPU(s) and TensorFlow sees none (%s); "
                  "training on the CPU, as training.cpu_fallback allows" % (stage_name, asked, given),
                  file=sys.stderr)
            return
        raise InputError(
            "stage %s asked for %d GPU(s) but TensorFlow %s sees none (%s; built with CUDA: %s): "
            "the container runtime did not pass the GPUs in, or the image has no GPU build of "
            "TensorFlow. Set training.cpu_fallback: true in the spec to train on the CPU instead"
            % (stage_name, asked, tf.__version__, given, tf.test.is_built_with_cuda()))
    if len(seen) < asked:
        print("trainer: warning: stage %s asked for %d GPU(s); TensorFlow sees %d (%s): %s"
              % (stage_name, asked, len(seen), given, ", ".join(seen)), file=sys.stderr)


def worker_paths(paths, run_dir, out_dir):
    """The stage's output paths moved from run_dir to out_dir (a worker's own folder)."""
    if out_dir == run_dir:
        return paths
    moved = {}
    for k, p in paths.items():
        rel = os.path.relpath(p, run_dir)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            rel = p.lstrip(os.sep)
        moved[k] = os.path.join(out_dir, rel)
    return moved


def run(spec, stage_name, run_dir):
    st_spec = stage_spec(spec, stage_name)
    # First of all: several nodes' collectives must be set up before TensorFlow starts.
    worker = distribute.make_worker(int(st_spec["gpus"] or 1))
    try:
        return _run(spec, stage_name, run_dir, st_spec, worker)
    finally:
        worker.cleanup()


def _run(spec, stage_name, run_dir, st_spec, worker):
    # What the run directory holds (resume state, history, the checkpoint to start from)
    # every worker reads; only the chief writes there, the others write to their own folder.
    run_paths = stage_paths(spec, stage_name, run_dir)
    paths = worker_paths(run_paths, run_dir, worker.output_dir(run_dir))
    for key in ("dir", "checkpoints", "state"):
        os.makedirs(paths[key], exist_ok=True)
    for key in ("history", "metrics", "evaluation", "best_checkpoint", "final_checkpoint", "model_info"):
        os.makedirs(os.path.dirname(paths[key]), exist_ok=True)
    seed = int(spec["seed"])
    _seed(seed)
    (tr_paths, tr_labels, class_names), (va_paths, va_labels, _) = load_data(spec)
    n_classes = len(class_names)
    info = model_info(spec, class_names)
    d = spec["data"]
    image_size = d["image_size"]
    compat.set_mixed_precision(bool(spec["training"]["mixed_precision"]))
    check_gpus(stage_name, int(st_spec["gpus"] or 0), bool(spec["training"]["cpu_fallback"]))
    if spec["training"]["tensorboard"] and not compat.has_tensorboard():
        # Keras would fail only at the end of the first epoch; say so before training.
        raise InputError("training.tensorboard is true, but %s has no tensorboard package (recent "
                         "tensorflow-cpu wheels leave it out): install it (pip install tensorboard) or "
                         "set training.tensorboard: false" % sys.executable)

    strategy = worker.strategy
    replicas = strategy.num_replicas_in_sync
    # batch_size is per GPU: the global batch is batch_size x GPUs x nodes.
    batch = int(d["batch_size"]) * replicas

    state = read_state(run_paths["state"])
    init_ckpt = None
    init_record = None
    if st_spec["init_from"] and is_checkpoint_path(st_spec["init_from"]):
        # A checkpoint file: a path in the spec, or another run's stage (RUN:STAGE) that
        # hpctl resolved to that stage's best checkpoint at submit.
        init_ckpt = st_spec["init_from"]
        if not os.path.isfile(init_ckpt):
            raise InputError("stage %r starts from the checkpoint %s, which does not exist"
                             % (stage_name, init_ckpt))
        prev = model_info_beside(init_ckpt)
    elif st_spec["init_from"]:
        init_paths = stage_paths(spec, st_spec["init_from"], run_dir)
        init_ckpt = checkpoint_path(init_paths["best_checkpoint"])
        if not os.path.exists(init_ckpt):
            raise InputError("stage %r starts from stage %r, whose best checkpoint %s does not exist; "
                             "run that stage first" % (stage_name, st_spec["init_from"], init_ckpt))
        prev = read_model_info(init_paths["model_info"])
    if init_ckpt:
        if prev and prev.get("class_names") != class_names:
            raise InputError("stage %r: classes %s differ from those of %s (%s)"
                             % (stage_name, class_names, init_ckpt, prev.get("class_names")))
        # Recorded in metrics.json, so anyone can check which file this stage started from
        # (its digest is that of the fetched best checkpoint of init_from).
        # The path is relative to the run directory for its own stages, absolute for a
        # checkpoint outside it.
        rel = os.path.relpath(init_ckpt, run_dir)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            rel = os.path.abspath(init_ckpt)
        init_record = {"path": rel, "sha256": weights.file_digest(init_ckpt, "sha256")}
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
        mdl.set_trainable(model, st_spec["unfreeze_layers"])
        mdl.compile_model(model, st_spec["optimizer"], n_classes)
        if state:
            restore_state(run_paths["state"], model, state)

    rows = []
    st = {"epoch": 0, "best_val_accuracy": None, "best_val_loss": None, "best_epoch": None,
          "train_time_s": 0.0, "train_images": 0, "wall_time_s": 0.0, "attempts": 0}
    if state:
        st.update(state)
        done = int(state["epoch"])
        for r in fsutil.read_csv(run_paths["history"]):
            try:
                if int(r["epoch"]) <= done:
                    rows.append(r)
            except (KeyError, ValueError):
                pass
        rows = rows[:done]
        fsutil.write_csv(paths["history"], HISTORY_HEADER, rows)
        print("trainer: stage %s: resuming after epoch %d" % (stage_name, done), file=sys.stderr)
    else:
        # A fresh start: no rows and no resume state from some older attempt.
        fsutil.write_csv(paths["history"], HISTORY_HEADER, [])
    st["attempts"] = int(st.get("attempts", 0)) + 1
    initial_epoch = int(st["epoch"])
    epochs = int(st_spec["epochs"])

    spe = int(st_spec["steps_per_epoch"] or 0)
    vsteps = int(st_spec["validation_steps"] or 0)
    train_ds = data.make_dataset(tr_paths, tr_labels, n_classes, image_size, batch, spec["model"]["backbone"],
                                 training=True, seed=seed, shuffle_buffer=d["shuffle_buffer"],
                                 cache=bool(d["cache"]), aug=spec["augment"], repeat=spe > 0)
    val_ds = data.make_dataset(va_paths, va_labels, n_classes, image_size, batch, spec["model"]["backbone"],
                               cache=bool(d["cache"]), repeat=vsteps > 0, take_batches=vsteps)
    images_per_epoch = spe * batch if spe > 0 else len(tr_paths)
    if worker.multi:
        train_ds, val_ds = distribute.shard_by_data(train_ds), distribute.shard_by_data(val_ds)

    if worker.multi:
        compat.fit_across_workers(model, strategy)
    t0 = time.time()
    if initial_epoch < epochs:
        # On several nodes all workers decide together, so that none is left waiting.
        if worker.any_true(stop_requested()):
            raise Preempted()
        cb = StageCallback(paths, rows, st, info, images_per_epoch, worker)
        cbs = [cb]
        if spec["training"]["tensorboard"]:
            # Before the stage's own callback, whose on_epoch_end may stop training
            # (SIGUSR2): the epoch's scalars are written first.
            cbs.insert(0, compat.tensorboard(paths["tensorboard"]))
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=spe if spe > 0 else None, callbacks=cbs, verbose=2)
        t0 = cb.t_attempt
    st["wall_time_s"] = st.get("wall_time_s", 0.0) + (time.time() - t0)

    final = paths["final_checkpoint"] + compat.MODEL_EXT
    write_checkpoint(model, final, info, paths["model_info"])
    best = checkpoint_path(paths["best_checkpoint"])
    last = rows[-1] if rows else {}
    metrics = {
        "stage": stage_name,
        "best_val_accuracy": st.get("best_val_accuracy"),
        "best_val_loss": st.get("best_val_loss"),
        "best_epoch": st.get("best_epoch"),
        "final_val_accuracy": to_float(last.get("val_accuracy")) if last else None,
        "final_val_loss": to_float(last.get("val_loss")) if last else None,
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
        "nodes": worker.count,
        "global_batch_size": batch,
        "mixed_precision": bool(spec["training"]["mixed_precision"]),
        "class_names": class_names,
        "seed": seed,
        "backbone": spec["model"]["backbone"],
        # What a sweep varies, so each trial's metrics say what it ran with.
        "optimizer": {"name": st_spec["optimizer"]["name"],
                      "learning_rate": st_spec["optimizer"]["learning_rate"]},
        "unfreeze_layers": st_spec["unfreeze_layers"],
        "init_from": st_spec["init_from"] or "",
        "init_checkpoint": init_record,
        "checkpoint_format": compat.MODEL_FORMAT,
        "checkpoints": {
            "best": os.path.relpath(best, run_dir),
            "final": os.path.relpath(final, run_dir),
        },
        "train_images": len(tr_paths),
        "val_images": len(va_paths),
    }
    if not worker.chief:
        # The chief alone writes the metrics and evaluates the model.
        return metrics
    fsutil.write_json(paths["metrics"], metrics)
    evaluate(spec, stage_name, run_dir)
    return metrics
