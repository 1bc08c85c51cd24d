"""The training loop's callback: after every epoch, a history row, the best checkpoint when
validation accuracy improved, and the resume state; SIGUSR2 stops it between batches."""

import signal
import sys
import time

from . import Preempted, compat, fsutil
from .checkpoints import write_checkpoint
from .compat import keras
from .resume import save_state

# time: when the epoch ended (Unix seconds), so `hpctl status --watch` can tell seconds
# per epoch and an ETA from the history alone.
HISTORY_HEADER = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]

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


def to_float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


class StageCallback(keras.callbacks.Callback):
    def __init__(self, paths, rows, st, info, images_per_epoch, worker=None):
        """paths: the stage's absolute output paths (spec.stage_paths), this worker's.
        worker: a distribute.Worker; on several nodes, whether to stop is decided together."""
        super(StageCallback, self).__init__()
        self.paths = paths
        self.rows = rows
        self.st = st
        self.info = info
        self.images_per_epoch = images_per_epoch
        self.t_epoch = None
        self.t_val = None
        self.t_attempt = time.time()
        self.worker = worker
        # Where training is, for the message when all workers stop together.
        self.epoch = 0
        self.batch = None

    def _check(self):
        # On several nodes every worker must stop at the same step, or the others would
        # wait in the next step's collective: the workers decide together (one small
        # all-reduce per check), and all stop when any of them got SIGUSR2.
        if self.worker is not None and self.worker.multi:
            stop = self.worker.any_true(stop_requested())
            if stop:
                print("trainer: worker %d of %d: all workers stop at epoch %d, batch %s"
                      % (self.worker.index, self.worker.count, self.epoch + 1, self.batch), file=sys.stderr)
        else:
            stop = stop_requested()
        if stop:
            raise Preempted()

    def on_train_batch_end(self, batch, logs=None):
        self.batch = batch + 1
        self._check()

    def on_test_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batch = epoch, 0
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
            "loss": to_float(logs.get("loss")),
            "accuracy": to_float(logs.get("accuracy")),
            "val_loss": to_float(logs.get("val_loss")),
            "val_accuracy": to_float(logs.get("val_accuracy")),
            "lr": compat.learning_rate(self.model.optimizer),
            "time": round(now, 3),
        }
        self.rows.append(row)
        fsutil.write_csv(self.paths["history"], HISTORY_HEADER, self.rows)
        va = row["val_accuracy"]
        if st.get("best_val_accuracy") is None or va > st["best_val_accuracy"]:
            st["best_val_accuracy"] = va
            st["best_val_loss"] = row["val_loss"]
            st["best_epoch"] = epoch + 1
            write_checkpoint(self.model, self.paths["best_checkpoint"] + compat.MODEL_EXT, self.info,
                             self.paths["model_info"])
        st["epoch"] = epoch + 1
        save_state(self.paths["state"], self.model, st)
        self._check()
