"""Input pipeline: class-per-folder images -> tf.data, with the published augmentations as
Keras preprocessing layers and the backbone's own preprocess_input."""

import math
import os

from . import InputError
from .backbones import backbone_entry
from .compat import tf

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUTOTUNE = tf.data.experimental.AUTOTUNE  # tf.data.AUTOTUNE is missing before TF 2.4


def list_images(directory, what="data"):
    """(paths, labels, class_names) for a class-per-folder directory; classes sorted by name."""
    if not os.path.isdir(directory):
        raise InputError("%s folder %s does not exist (or is not a folder)" % (what, directory))
    class_names = sorted(e for e in os.listdir(directory)
                         if os.path.isdir(os.path.join(directory, e)) and not e.startswith("."))
    if len(class_names) < 2:
        raise InputError("%s folder %s has %d class folder(s) (%s); need at least 2, one folder per class"
                         % (what, directory, len(class_names), ", ".join(class_names) or "none"))
    paths, labels = [], []
    for i, c in enumerate(class_names):
        n = 0
        for root, _dirs, files in sorted(os.walk(os.path.join(directory, c), followlinks=True)):
            for fn in sorted(files):
                if fn.lower().endswith(IMAGE_EXTS) and not fn.startswith("."):
                    paths.append(os.path.join(root, fn))
                    labels.append(i)
                    n += 1
        if n == 0:
            raise InputError("%s folder %s: class folder %r has no images (%s)"
                             % (what, directory, c, ", ".join(IMAGE_EXTS)))
    return paths, labels, class_names


# ResNet50's preprocess_input ("caffe" mode): RGB -> BGR, minus the ImageNet BGR mean.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _caffe_preprocess(x):
    """keras.applications.resnet50.preprocess_input for float tensors, as two TensorFlow ops.
    Keras 2 implements it as a strided slice x[..., ::-1] plus bias_add, about 2.5x slower on
    CPU; the result is identical (x + (-m) == x - m in IEEE arithmetic), which
    tests/test_units.py checks against Keras's own function."""
    x = tf.convert_to_tensor(x)
    return tf.reverse(x, [-1]) - tf.constant(_CAFFE_MEAN_BGR, dtype=x.dtype)


def _tf_preprocess(x):
    """keras.applications.mobilenet_v2.preprocess_input ("tf" mode): [0, 255] -> [-1, 1]."""
    x = tf.convert_to_tensor(x)
    return x / 127.5 - 1.0


def _identity(x):
    return tf.convert_to_tensor(x)


# backbones.json's preprocessing modes, as keras.applications' preprocess_input implements them.
_PREPROCESS = {"caffe": _caffe_preprocess, "tf": _tf_preprocess, "none": _identity}


def preprocess_fn(backbone):
    """The backbone's own preprocess_input (its mode in backbones.json), used at training,
    evaluation and prediction. "caffe" (ResNet50) and "tf" (MobileNetV2) are tensor versions of
    the same formula as Keras's functions (tested equal); "none" is EfficientNet's, the
    identity (it rescales inside the model)."""
    mode = backbone_entry(backbone)["preprocessing"]
    if mode not in _PREPROCESS:
        raise InputError("backbones.json: %s: unknown preprocessing %r (one of %s)"
                         % (backbone, mode, ", ".join(sorted(_PREPROCESS))))
    return _PREPROCESS[mode]


def fused_augmenter(aug, seed, output_size=None):
    """The published ImageDataGenerator(rotation_range=10, zoom_range=0.1,
    width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True) transform, drawn per
    image from the same ranges, applied as ONE projective warp (flip, rotation, zoom and shift composed into a single
    matrix, bilinear, fill 'nearest'), as ImageDataGenerator itself does.

    Returns apply(x) for a batch x of shape [n, h, w, c], or None when every augmentation is
    off. With output_size (H, W), the resize from the source size (h, w) to (H, W) is composed
    into the same matrix (tf.image.resize's half-pixel mapping), so a decoded image of any size
    is resampled once, straight to the target size; the augmentation's geometry (shift as a
    fraction of the output, rotation and zoom about the centre) is defined on the (H, W) image
    exactly as when resizing first. Without it the output has the input's size."""
    rot = float(aug.get("rotation") or 0) * math.pi / 180.0
    z = float(aug.get("zoom") or 0)
    hs, ws = float(aug.get("height_shift") or 0), float(aug.get("width_shift") or 0)
    hflip, vflip = bool(aug.get("horizontal_flip")), bool(aug.get("vertical_flip"))
    if not (rot or z or hs or ws or hflip or vflip):
        return None

    def uniform(n, lo, hi, k):
        return tf.random.uniform([n], lo, hi, seed=seed + k)

    def flip_sign(n, on, k):
        if not on:
            return tf.ones([n])
        return tf.where(tf.random.uniform([n], 0, 1, seed=seed + k) < 0.5, -tf.ones([n]), tf.ones([n]))

    def apply(x):
        shape = tf.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        if output_size is None:
            oh, ow = h, w
        else:
            oh, ow = tf.constant(int(output_size[0])), tf.constant(int(output_size[1]))
        hf, wf = tf.cast(oh, tf.float32), tf.cast(ow, tf.float32)
        theta = uniform(n, -rot, rot, 1) if rot else tf.zeros([n])
        zx = uniform(n, 1 - z, 1 + z, 2) if z else tf.ones([n])
        zy = uniform(n, 1 - z, 1 + z, 3) if z else tf.ones([n])
        dx = uniform(n, -ws, ws, 4) * wf if ws else tf.zeros([n])
        dy = uniform(n, -hs, hs, 5) * hf if hs else tf.zeros([n])
        sx, sy = flip_sign(n, hflip, 6), flip_sign(n, vflip, 7)
        c, s_ = tf.cos(theta), tf.sin(theta)
        # output pixel p -> (H, W)-image pixel C + R(theta) Z F (p - C) + (dx, dy); x = column, y = row
        a0, a1 = c * zx * sx, -s_ * zy * sy
        b0, b1 = s_ * zx * sx, c * zy * sy
        cx, cy = (wf - 1) / 2, (hf - 1) / 2
        a2 = cx - a0 * cx - a1 * cy + dx
        b2 = cy - b0 * cx - b1 * cy + dy
        if output_size is not None:
            # (H, W)-image pixel q -> source pixel k (q + 0.5) - 0.5, k = source / target size
            kx = tf.cast(w, tf.float32) / wf
            ky = tf.cast(h, tf.float32) / hf
            a0, a1, a2 = kx * a0, kx * a1, kx * (a2 + 0.5) - 0.5
            b0, b1, b2 = ky * b0, ky * b1, ky * (b2 + 0.5) - 0.5
        zeros = tf.zeros([n])
        m = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(x, tf.float32), transforms=m, output_shape=tf.stack([oh, ow]),
            fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")

    return apply


def _decode(path):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _decoder(image_size):
    """Evaluation, prediction and cached training: decode, plain bilinear resize."""
    h, w = int(image_size[0]), int(image_size[1])

    def load(path, label):
        img = tf.image.resize(_decode(path), [h, w])  # float32 in [0, 255]
        img.set_shape([h, w, 3])
        return img, label

    return load


def _train_decode(path, image_size):
    """Decode for the fused training warp: a JPEG at least 2x (4x, 8x) the target size in both
    directions is decoded at 1/2 (1/4, 1/8) scale by libjpeg (DCT scaling, which averages, so
    the warp's bilinear sampling then skips no source pixels), still at least the target
    size; anything else is decoded at full size, as by decode_image."""
    raw = tf.io.read_file(path)
    th, tw = int(image_size[0]), int(image_size[1])

    def jpeg():
        shp = tf.image.extract_jpeg_shape(raw)
        k = tf.minimum(shp[0] // th, shp[1] // tw)

        def at(r):
            return lambda: tf.io.decode_jpeg(raw, channels=3, ratio=r)

        return tf.case([(k >= 8, at(8)), (k >= 4, at(4)), (k >= 2, at(2))], default=at(1))

    def other():
        return tf.io.decode_image(raw, channels=3, expand_animations=False)

    return tf.cond(tf.io.is_jpeg(raw), jpeg, other)


def label_tensor(labels, num_classes):
    if num_classes == 2:
        return tf.constant([[float(v)] for v in labels], dtype=tf.float32)
    return tf.constant(labels, dtype=tf.int32)


def make_dataset(paths, labels, num_classes, image_size, batch_size, backbone,
                 training=False, seed=42, shuffle_buffer=1000, cache=False, aug=None,
                 repeat=False, take_batches=0):
    """Training with the fused warp: each image is decoded and then resampled once, by one
    projective warp that does resize and augmentation together, and preprocessed, per image
    in a parallel map, then batched. With cache, the decoded and resized images are cached
    (bounded memory: target size) and the warp then runs on them. Evaluation (and training
    without augmentation) decodes and resizes per image, batches, then preprocesses."""
    h, w = int(image_size[0]), int(image_size[1])
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), label_tensor(labels, num_classes)))
    nshuf = max(1, min(int(shuffle_buffer) or len(paths), len(paths)))
    if training:
        # Shuffle file names (cheap) with a fixed seed, reshuffled each epoch.
        ds = ds.shuffle(nshuf, seed=seed, reshuffle_each_iteration=True)
    pre = preprocess_fn(backbone)
    warp = None
    if training and aug:
        warp = fused_augmenter(aug, seed, output_size=(h, w))
    if warp is not None and not cache:
        def load_warp(path, y):
            img = warp(_train_decode(path, image_size)[tf.newaxis])[0]
            img.set_shape([h, w, 3])
            return pre(img), y

        ds = ds.map(load_warp, num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(_decoder(image_size), num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if training:
            ds = ds.shuffle(nshuf, seed=seed + 7, reshuffle_each_iteration=True)
        if warp is not None:
            def warp_cached(img, y):
                out = warp(img[tf.newaxis])[0]
                out.set_shape([h, w, 3])
                return pre(out), y

            ds = ds.map(warp_cached, num_parallel_calls=AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if take_batches:
        ds = ds.take(take_batches)
    if warp is None:
        def f(x, y):
            return pre(x), y

        ds = ds.map(f, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def load_image_batch(paths, image_size, backbone):
    dec = _decoder(image_size)  # the same decode and resize as evaluation
    imgs = []
    for p in paths:
        if not os.path.isfile(p):
            raise InputError("image %s does not exist" % p)
        try:
            img, _ = dec(tf.constant(p), 0)
        except Exception as e:
            raise InputError("cannot decode image %s: %s" % (p, e))
        imgs.append(img)
    return preprocess_fn(backbone)(tf.stack(imgs))
