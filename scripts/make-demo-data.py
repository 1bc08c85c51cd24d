#!/usr/bin/env python3
"""Write the quickstart's demo data set: two visually distinct classes of small images,
class-per-folder, as hpctl's trainer reads them.

    scripts/make-demo-data.py [OUT]        (default: demo-data)

    OUT/train/circles/*.png  OUT/train/squares/*.png
    OUT/val/circles/*.png    OUT/val/squares/*.png

"circles" are warm-coloured filled discs on a dark warm background, "squares"
cool-coloured filled squares on a dark cool background, each of random size and position,
with noise everywhere. Shape and colour both tell the
classes apart, so a network trained from scratch on two CPU cores separates them in a
couple of minutes. The seed is fixed: the same files every time (the script rewrites them
only when the set is missing or incomplete). Needs numpy and Pillow.
"""

import os
import sys

import numpy as np
from PIL import Image

SIZE = 64
SEED = 20261129
COUNTS = {"train": 160, "val": 50}  # per class
CLASSES = ("circles", "squares")


def image(kind, rng):
    r = rng.uniform(SIZE * 0.22, SIZE * 0.38)  # radius, or half the side
    cy, cx = rng.uniform(r, SIZE - r, size=2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if kind == "circles":  # warm disc on a dark warm background
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        color = [rng.uniform(200, 255), rng.uniform(110, 190), rng.uniform(0, 60)]
        back = [70, 35, 20]
    else:  # cool square on a dark cool background
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        color = [rng.uniform(0, 60), rng.uniform(110, 190), rng.uniform(200, 255)]
        back = [20, 35, 70]
    img = np.array(back, dtype=np.float64) + rng.normal(0, 18, size=(SIZE, SIZE, 3))
    img[mask] = np.array(color) + rng.normal(0, 18, size=(int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def complete(out):
    for split, n in COUNTS.items():
        for c in CLASSES:
            d = os.path.join(out, split, c)
            if not os.path.isdir(d) or len([f for f in os.listdir(d) if f.endswith(".png")]) != n:
                return False
    return True


def main(argv):
    out = argv[1] if len(argv) > 1 else "demo-data"
    if complete(out):
        print("demo data: %s is ready" % out)
        return 0
    rng = np.random.RandomState(SEED)
    for split, n in COUNTS.items():
        for c in CLASSES:
            d = os.path.join(out, split, c)
            os.makedirs(d, exist_ok=True)
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
            for i in range(n):
                Image.fromarray(image(c, rng)).save(os.path.join(d, "%s_%03d.png" % (c[:-1], i)))
    total = sum(COUNTS.values()) * len(CLASSES)
    print("demo data: wrote %d images (%dx%d, %s) to %s" % (total, SIZE, SIZE, " vs ".join(CLASSES), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
