"""Benchmark-only input pipeline: the published augmentations as a chain of Keras
preprocessing layers, per batch (bench_input.py's last row). The trainer itself uses the
fused warp in hpctl_trainer/data.py; this is the slower alternative it was measured against."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hpctl_trainer import data  # noqa: E402
from hpctl_trainer.compat import keras, layer, tf  # noqa: E402


def augmenter(aug, seed):
    """Keras preprocessing layers equal to the published
    ImageDataGenerator(rotation_range=10, zoom_range=0.1, width_shift_range=0.1,
    height_shift_range=0.1, horizontal_flip=True, vertical_flip=False) (fill_mode 'nearest').
    Returns None when every augmentation is off."""
    layers = []
    fill = {"fill_mode": "nearest"}
    if aug.get("horizontal_flip") and aug.get("vertical_flip"):
        layers.append(layer("RandomFlip")("horizontal_and_vertical", seed=seed))
    elif aug.get("horizontal_flip"):
        layers.append(layer("RandomFlip")("horizontal", seed=seed))
    elif aug.get("vertical_flip"):
        layers.append(layer("RandomFlip")("vertical", seed=seed))
    rot = float(aug.get("rotation") or 0)
    if rot:
        # ImageDataGenerator: degrees in [-rot, rot]; RandomRotation: a fraction of 2*pi.
        layers.append(layer("RandomRotation")(rot / 360.0, seed=seed + 1, **fill))
    z = float(aug.get("zoom") or 0)
    if z:
        # ImageDataGenerator draws zx and zy independently in [1-z, 1+z].
        layers.append(layer("RandomZoom")((-z, z), width_factor=(-z, z), seed=seed + 2, **fill))
    hs, ws = float(aug.get("height_shift") or 0), float(aug.get("width_shift") or 0)
    if hs or ws:
        layers.append(layer("RandomTranslation")(hs, ws, seed=seed + 3, **fill))
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")


def make_layers_dataset(paths, labels, num_classes, image_size, batch_size, backbone, seed=42,
                        shuffle_buffer=1000, aug=None, repeat=False):
    """The training pipeline with augmenter() instead of the fused warp: decode and resize
    per image, batch, augment the batch with the layers, preprocess."""
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), data.label_tensor(labels, num_classes)))
    nshuf = max(1, min(int(shuffle_buffer) or len(paths), len(paths)))
    ds = ds.shuffle(nshuf, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(data._decoder(image_size), num_parallel_calls=data.AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    pre = data.preprocess_fn(backbone)
    layers_model = augmenter(aug, seed) if aug else None

    def f(x, y):
        if layers_model is not None:
            x = layers_model(x, training=True)
        return pre(x), y

    return ds.map(f, num_parallel_calls=data.AUTOTUNE).prefetch(data.AUTOTUNE)


def steps(n_images, batch_size):
    return int(math.ceil(float(n_images) / batch_size))
