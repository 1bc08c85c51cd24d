#!/usr/bin/env python3
"""Input-pipeline throughput on CPU, with the published augmentations:
this trainer's tf.data pipeline vs ImageDataGenerator.flow_from_directory, same images,
same run. Needs Keras 2 (ImageDataGenerator is gone from Keras 3) and scipy.

    scripts/trainer-venv.sh tf215 'tensorflow-cpu==2.15.*'
    .venv-tf215/bin/python trainer/bench/bench_input.py [--rounds 5] [--per-run 768] [--images 256]

Every pipeline is timed --rounds times, interleaved (A B C A B C ...), each time over --per-run
images after 10 warm-up batches; the table gives the median, the spread (min-max) and the
ratio of medians. The data.cache row caches the decoded, resized images in memory (filled
before timing): say so when quoting it, the ImageDataGenerator baseline has no cache.
"""

import argparse
import gc
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

import layers_pipeline  # noqa: E402  (this folder)

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


def load_line():
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


class IDG:
    """ImageDataGenerator.flow_from_directory with the published settings. Single-threaded
    (no workers), so nothing runs in the background between timings."""

    def __init__(self, root, size, batch):
        from keras.preprocessing.image import ImageDataGenerator  # Keras 2

        gen = ImageDataGenerator(rotation_range=10, zoom_range=0.1, width_shift_range=0.1,
                                 height_shift_range=0.1, horizontal_flip=True, vertical_flip=False,
                                 preprocessing_function=keras.applications.resnet50.preprocess_input)
        self.flow = gen.flow_from_directory(root, target_size=(size, size), batch_size=batch,
                                            class_mode="binary", seed=1)

    def start(self, warmup):
        for _ in range(warmup):
            next(self.flow)
        return self.flow

    def stop(self):
        pass


class TFData:
    """This trainer's training pipeline (data.make_dataset, training=True). A fresh iterator per
    timing, dropped afterwards, so its prefetch threads never run during another timing."""

    def __init__(self, root, size, batch, impl="fused", cache=False):
        self.paths, self.labels, self.names = data.list_images(root)
        self.size, self.batch, self.impl, self.cache = size, batch, impl, cache
        self.it = None
        if cache:  # fill the in-memory cache once; it persists across iterators of the dataset
            self.ds = self._make()
            for _ in self.ds.take(layers_pipeline.steps(len(self.paths), batch)):
                pass

    def _make(self):
        if self.impl == "layers":
            return layers_pipeline.make_layers_dataset(self.paths, self.labels, len(self.names),
                                                       (self.size, self.size), self.batch, "resnet50", seed=1,
                                                       aug=PUBLISHED, repeat=True)
        return data.make_dataset(self.paths, self.labels, len(self.names), (self.size, self.size), self.batch,
                                 "resnet50", training=True, seed=1, aug=PUBLISHED, repeat=True,
                                 cache=self.cache)

    def start(self, warmup):
        ds = self.ds if self.cache else self._make()
        self.it = iter(ds)
        for _ in range(warmup):  # tracing, autotune, thread start
            next(self.it)
        return self.it

    def stop(self):
        self.it = None
        gc.collect()


def timed(pipe, n, warmup):
    """Images per second over n images, timed right after warmup batches (so the prefetch
    buffers are in their steady state, not filled while idle). Output checked: float32,
    (batch, size, size, 3)."""
    it = pipe.start(warmup)
    seen, t0 = 0, time.perf_counter()
    while seen < n:
        x, _ = next(it)
        seen += int(x.shape[0])
    dt = time.perf_counter() - t0
    x = np.asarray(x)
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[3] == 3, (x.dtype, x.shape)
    pipe.stop()
    return seen / dt, x.shape[1:3]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="images generated")
    p.add_argument("--per-run", type=int, default=768, help="images timed per pipeline per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds, each timing every pipeline once (interleaved)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--no-layers", action="store_true", help="skip the chain-of-Keras-layers row (slow)")
    a = p.parse_args()
    if compat.KERAS3:
        sys.exit("bench_input.py needs Keras 2 (TF <= 2.15) for ImageDataGenerator")
    print("TensorFlow %s, Keras %s, %d CPU cores, %d images %dx%d -> %dx%d, batch %d, %d rounds x %d images"
          % (compat.TF_VERSION, compat.KERAS_VERSION, os.cpu_count() or 0, a.images, a.size + 32, a.size + 48,
             a.size, a.size, a.batch, a.rounds, a.per_run))
    print("before: " + load_line(), flush=True)
    tmp = tempfile.mkdtemp(prefix="hpctl-bench-")
    try:
        make_images(tmp, a.images, a.size)
        pipes = [("ImageDataGenerator.flow_from_directory", IDG(tmp, a.size, a.batch)),
                 ("hpctl tf.data, fused warp (default)", TFData(tmp, a.size, a.batch)),
                 ("hpctl tf.data, fused warp, data.cache", TFData(tmp, a.size, a.batch, cache=True))]
        if not a.no_layers:
            pipes.append(("hpctl tf.data, chain of Keras layers", TFData(tmp, a.size, a.batch, impl="layers")))
        rates = dict((name, []) for name, _ in pipes)
        for r in range(a.rounds):
            for name, pipe in pipes:  # A B C A B C ...: load changes hit every pipeline alike
                ips, shape = timed(pipe, a.per_run, warmup=10)
                assert tuple(shape) == (a.size, a.size), shape
                rates[name].append(ips)
            print("round %d: %s; %s" % (r + 1, ", ".join("%.0f" % rates[n][-1] for n, _ in pipes), load_line()),
                  flush=True)
    finally:
        shutil.rmtree(tmp)
    print("after: " + load_line())
    base = float(np.median(rates[pipes[0][0]]))
    print("%-40s %9s %15s %7s" % ("pipeline (images/s)", "median", "min-max", "ratio"))
    for name, _ in pipes:
        v = rates[name]
        med = float(np.median(v))
        print("%-40s %9.1f %7.1f-%-7.1f %6.2fx" % (name, med, min(v), max(v), med / base))
    print("ratio = median / median of ImageDataGenerator; per-round ratios, fused: %s"
          % ", ".join("%.2f" % (f / i) for f, i in zip(rates[pipes[1][0]], rates[pipes[0][0]])))


if __name__ == "__main__":
    main()
