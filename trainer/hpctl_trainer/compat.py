"""Differences between TF 2.7 / Keras 2.7 (NVIDIA 22.02), TF 2.15 / Keras 2.15 and
TF >= 2.16 with Keras 3, kept in one place."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# tf.keras is Keras 2 up to TF 2.15 and Keras 3 from TF 2.16 on (or tf_keras when
# TF_USE_LEGACY_KERAS=1); using it keeps the Keras that TensorFlow itself pairs with.
keras = tf.keras


def _keras_version():
    v = getattr(keras, "__version__", None)
    if v:
        return str(v)
    try:
        import keras as _k  # TF 2.15: tf.keras has no __version__, the keras package has

        if str(_k.__version__).split(".")[0] == "2" or not hasattr(keras, "ops"):
            return str(_k.__version__)
    except Exception:
        pass
    try:
        import tf_keras  # TF_USE_LEGACY_KERAS=1

        return str(tf_keras.__version__)
    except Exception:
        pass
    return "3" if hasattr(keras, "ops") else "2"


TF_VERSION = tf.__version__
KERAS_VERSION = _keras_version()
KERAS3 = int(KERAS_VERSION.split(".")[0]) >= 3

# Checkpoint formats. Keras 3 saves whole models only as .keras and weights only as
# .weights.h5; Keras 2.7 cannot write .keras, so Keras 2 uses HDF5 (.h5) for whole models.
MODEL_EXT = ".keras" if KERAS3 else ".h5"
MODEL_FORMAT = "keras" if KERAS3 else "h5"
# Resume state weights: Keras 3 needs the .weights.h5 suffix; Keras 2.13+ would read that suffix
# as its new weights format (which also stores the optimizer and breaks with mixed precision's
# LossScaleOptimizer), so Keras 2 uses a plain .h5 name: legacy HDF5 weights on 2.7 to 2.15.
STATE_WEIGHTS = "model.weights.h5" if KERAS3 else "model_weights.h5"


def layer(name):
    """A preprocessing layer class: keras.layers.X (TF >= 2.6) or the experimental path."""
    cls = getattr(keras.layers, name, None)
    if cls is None:
        cls = getattr(keras.layers.experimental.preprocessing, name)
    return cls


def save_model(model, path):
    if KERAS3:
        model.save(path)
    else:
        import warnings

        with warnings.catch_warnings():  # "HDF5 is legacy": deliberate, Keras 2.7 has no .keras
            warnings.simplefilter("ignore", UserWarning)
            model.save(path, include_optimizer=False, save_format="h5")


def load_model(path):
    return keras.models.load_model(path, compile=False)


def set_mixed_precision(enabled):
    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)


def optimizer_variables(opt):
    v = getattr(opt, "variables", None)
    if v is None:
        return []
    if callable(v):
        v = v()
    return list(v)


def build_optimizer(opt, trainable_variables):
    """Create the optimizer's slot variables now, so saved values can be assigned."""
    inner = getattr(opt, "inner_optimizer", None)  # mixed precision LossScaleOptimizer
    for o in ([inner] if inner is not None else []) + [opt]:
        if hasattr(o, "_create_all_weights"):  # Keras 2 OptimizerV2 (TF 2.7, legacy)
            o._create_all_weights(trainable_variables)
        elif hasattr(o, "build"):  # Keras 2.11+ optimizer, Keras 3
            try:
                o.build(trainable_variables)
            except (TypeError, ValueError):
                pass
    _ = opt.iterations


def get_value(v):
    if hasattr(v, "numpy"):
        return v.numpy()
    return np.asarray(v)


def learning_rate(opt):
    lr = getattr(opt, "learning_rate", None)
    if lr is None:
        lr = getattr(opt, "lr", None)
    if lr is None:
        return float("nan")
    if callable(lr) and not hasattr(lr, "numpy"):
        try:
            lr = lr(opt.iterations)
        except Exception:
            return float("nan")
    try:
        return float(get_value(lr))
    except Exception:
        return float("nan")


def gpu_names():
    names = []
    for d in tf.config.list_physical_devices("GPU"):
        name = d.name
        try:
            name = tf.config.experimental.get_device_details(d).get("device_name", name)
        except Exception:
            pass
        names.append(name)
    return names


def has_tensorboard():
    """Whether tf.summary can write here: it needs the tensorboard package."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def tensorboard(log_dir):
    """Keras' TensorBoard callback writing each epoch's scalars to log_dir (train/ and
    validation/ event files). The same arguments under Keras 2.7, 2.15 and 3: no graph
    (large for a real backbone), no histograms, and no profiler (Keras 2 profiles batch
    2 by default, which needs packages a container may lack)."""
    return keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False,
                                       update_freq="epoch", profile_batch=0)


def fit_across_workers(model, strategy):
    """Keras 3's fit builds the model from the first batch averaged with strategy.reduce
    over the (x, y) structure, which MultiWorkerMirroredStrategy's reduce refuses ("Attempt
    to convert a value (PerReplica...)"): build it from this worker's own first batch
    instead, which has the same shapes. Keras 2 needs nothing."""
    if not KERAS3 or not hasattr(model, "_maybe_symbolic_build"):
        return

    def local(v):
        if isinstance(v, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(v)[0]
        return v

    def build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    _patch_reduce_per_replica()


def _patch_reduce_per_replica():
    """Keras 3 averages each step's logs across workers with reduce(MEAN, axis=0), which
    fails on the scalar losses and metrics ("Invalid reduction dimension 0 for input with 0
    dimensions"): average scalars over all replicas (axis=None) instead."""
    try:
        from keras.src.backend.tensorflow import trainer as tft
    except ImportError:
        return
    orig = getattr(tft, "reduce_per_replica", None)
    if orig is None or getattr(orig, "_hpctl", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        def one(v):
            first = (strategy.experimental_local_results(v)[0]
                     if isinstance(v, tf.distribute.DistributedValues) else v)
            if reduction in ("auto", "mean") and getattr(first, "shape", None) is not None \
                    and first.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return orig(v, strategy, reduction)
        return tf.nest.map_structure(one, values)

    reduce_per_replica._hpctl = True
    tft.reduce_per_replica = reduce_per_replica
