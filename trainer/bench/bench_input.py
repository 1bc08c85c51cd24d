#!/usr/bin/env python3
"""Input-pipeline throughput on CPU, with the published augmentations:
this trainer's tf.data pipeline vs ImageDataGenerator.flow_from_directory, same images,
same run. Needs Keras 2 (ImageDataGenerator is gone from Keras 3) and scipy.

    scripts/trainer-venv.sh tf215 'tensorflow-cpu==2.15.*'
    .venv-tf215/bin/python trainer/bench/bench_input.py [--images 256] [--size 224] [--batch 8]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from hpctl_trainer import compat, data  # noqa: E402
from hpctl_trainer.compat import keras  # noqa: E402

PUBLISHED = {"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
             "horizontal_flip": True, "vertical_flip": False}


def make_images(root, n, size):
    rng = np.random.RandomState(0)
    for i in range(n):
        c = ("urban", "rural")[i % 2]
        d = os.path.join(root, c)
        if not os.path.isdir(d):
            os.makedirs(d)
        # photo-like: smooth colour gradients, a few blocks and mild noise (pure noise would
        # make JPEG decoding the whole cost); a bit larger than the target, so resize works too
        hh, ww = size + 32, size + 48
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        img = np.stack([xx / ww * 255, yy / hh * 255, (xx + yy) / (hh + ww) * 255], axis=2)
        for _ in range(6):
            y0, x0 = rng.randint(0, hh - 40), rng.randint(0, ww - 40)
            img[y0:y0 + rng.randint(10, 40), x0:x0 + rng.randint(10, 40)] = rng.uniform(0, 255, 3)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(d, "%04d.jpg" % i), quality=90)


def bench_idg(root, size, batch, n):
    from keras.preprocessing.image import ImageDataGenerator  # Keras 2

    gen = ImageDataGenerator(rotation_range=10, zoom_range=0.1, width_shift_range=0.1,
                             height_shift_range=0.1, horizontal_flip=True, vertical_flip=False,
                             preprocessing_function=keras.applications.resnet50.preprocess_input)
    flow = gen.flow_from_directory(root, target_size=(size, size), batch_size=batch,
                                   class_mode="binary", seed=1)
    next(flow)  # warm up
    seen, t0 = 0, time.time()
    while seen < n:
        x, _ = next(flow)
        seen += len(x)
    return seen / (time.time() - t0)


def bench_tfdata(root, size, batch, n, impl):
    paths, labels, names = data.list_images(root)
    ds = data.make_dataset(paths, labels, len(names), (size, size), batch, "resnet50", training=True,
                           seed=1, aug=PUBLISHED, repeat=True, augment_impl=impl)
    it = iter(ds)
    for _ in range(3):  # warm up: tracing, autotune
        next(it)
    seen, t0 = 0, time.time()
    while seen < n:
        x, _ = next(it)
        seen += int(x.shape[0])
    return seen / (time.time() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="images generated, and timed per pipeline")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    if compat.KERAS3:
        sys.exit("bench_input.py needs Keras 2 (TF <= 2.15) for ImageDataGenerator")
    tmp = tempfile.mkdtemp(prefix="hpctl-bench-")
    try:
        make_images(tmp, a.images, a.size)
        idg = bench_idg(tmp, a.size, a.batch, a.images)
        fused = bench_tfdata(tmp, a.size, a.batch, a.images * 2, "fused")
        layers = bench_tfdata(tmp, a.size, a.batch, a.images * 2, "layers")
    finally:
        shutil.rmtree(tmp)
    print("TensorFlow %s, Keras %s, %d CPU cores, %d images %dx%d, batch %d"
          % (compat.TF_VERSION, compat.KERAS_VERSION, os.cpu_count() or 0, a.images, a.size, a.size, a.batch))
    print("ImageDataGenerator.flow_from_directory: %8.1f images/s" % idg)
    print("hpctl tf.data, fused warp (default):    %8.1f images/s  ratio %.1fx" % (fused, fused / idg))
    print("hpctl tf.data, chain of Keras layers:   %8.1f images/s  ratio %.1fx" % (layers, layers / idg))


if __name__ == "__main__":
    main()
