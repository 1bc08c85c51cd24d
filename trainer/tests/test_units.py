"""In-process units: backbones build, augmentation matches the published settings, specs."""

import os
import sys

import numpy as np
import pytest

from hpctl_trainer import backbones as bb, compat, data, model as mdl, spec as specmod


def test_backbones_table():
    # The list hpctl validates against (trainer.Backbones in Go) is this file.
    t = bb.backbones()
    assert set(t) == {"resnet50", "mobilenetv2", "efficientnetb0", "tinycnn"}
    for name, e in t.items():
        assert set(e) == {"application", "preprocessing", "min_image_size"}, name
        assert e["preprocessing"] in ("caffe", "tf", "none"), name
        assert e["application"] == "" or hasattr(compat.keras.applications, e["application"]), name


@pytest.mark.parametrize("backbone", bb.backbone_names())
def test_backbones_build(backbone):
    # At the table's smallest image size: hpctl accepts it, so the model must build there.
    side = bb.backbone_entry(backbone)["min_image_size"]
    for classes in (2, 3):
        m = mdl.build({"backbone": backbone, "dropout": 0.1}, (side, side), classes)
        mdl.compile_model(m, {"name": "rmsprop", "learning_rate": 1e-5}, classes)
        x = data.preprocess_fn(backbone)(np.random.uniform(0, 255, (2, side, side, 3)).astype("float32"))
        out = np.asarray(m.predict(x, verbose=0))
        assert out.shape == (2, 1 if classes == 2 else 3)
        base = mdl.find_base(m)
        assert not base.trainable
        mdl.set_trainable(m, 5)
        assert base.trainable and not base.layers[0].trainable and base.layers[-1].trainable
        assert sum(1 for l in base.layers if l.trainable) == 5
        n_weights = len(m.trainable_weights)
        mdl.set_trainable(m, -1)
        assert all(l.trainable for l in base.layers if l.weights)
        assert len(m.trainable_weights) > n_weights
        mdl.set_trainable(m, 0)
        assert not base.trainable and len(m.trainable_weights) == (2 if classes else 0)
        if backbone != "tinycnn":
            break


def test_bench_augmenter_matches_published_settings():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    import layers_pipeline

    aug = layers_pipeline.augmenter({"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
                          "horizontal_flip": True, "vertical_flip": False}, 1)
    kinds = {type(l).__name__: l for l in aug.layers}
    assert set(kinds) == {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation"}
    assert kinds["RandomFlip"].get_config()["mode"] == "horizontal"
    rot = kinds["RandomRotation"].get_config()
    assert rot["factor"] in (10.0 / 360, (-10.0 / 360, 10.0 / 360), [-10.0 / 360, 10.0 / 360]) \
        or abs(float(np.max(np.abs(rot["factor"]))) - 10.0 / 360) < 1e-9
    assert rot["fill_mode"] == "nearest"
    x = np.random.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert layers_pipeline.augmenter({"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0,
                           "horizontal_flip": False, "vertical_flip": False}, 1) is None


def test_eval_pipeline_is_deterministic_and_preprocessed(dataset):
    paths, labels, names = data.list_images(dataset["val"])
    assert names == ["horizontal", "vertical"] and len(paths) == 20
    a = [x for x, _ in data.make_dataset(paths, labels, 2, (32, 32), 8, "mobilenetv2")]
    b = [x for x, _ in data.make_dataset(paths, labels, 2, (32, 32), 8, "mobilenetv2")]
    assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))
    allx = np.concatenate([np.asarray(u) for u in a])
    assert allx.min() >= -1.0 and allx.max() <= 1.0  # mobilenet_v2.preprocess_input
    batch = data.load_image_batch(paths[:3], (32, 32), "mobilenetv2")
    assert np.allclose(np.asarray(batch), allx[:3], atol=1e-5)  # predict == eval preprocessing


def test_spec_paths_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/u")
    assert specmod.expand("~/d") == "/home/u/d"
    assert specmod.expand("$HOME/d") == "/home/u/d"
    assert specmod.expand("/x/$HOME/d") == "/x/$HOME/d"
    assert specmod.expand("/a/$b") == "/a/$b"


def test_formats_per_keras_version():
    if compat.KERAS3:
        assert compat.MODEL_EXT == ".keras"
    else:
        assert compat.MODEL_EXT == ".h5"
    assert compat.STATE_WEIGHTS.endswith(".weights.h5" if compat.KERAS3 else "_weights.h5")
    assert compat.TF_VERSION and compat.KERAS_VERSION


def test_fused_augmenter_geometry():
    """The fused warp: identity when off, an exact mirror for a flip, and bounded shifts."""
    from hpctl_trainer.compat import tf

    x = np.random.uniform(0, 255, (3, 16, 20, 3)).astype("float32")
    off = {"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0,
           "horizontal_flip": False, "vertical_flip": False}
    assert data.fused_augmenter(off, 1) is None
    flips = [np.asarray(data.fused_augmenter(dict(off, horizontal_flip=True), s)(tf.constant(x)))
             for s in range(8)]
    for y in flips:
        for i in range(3):
            assert np.allclose(y[i], x[i], atol=1e-3) or np.allclose(y[i], x[i, :, ::-1], atol=1e-3)
    assert any(not np.allclose(y, x, atol=1e-3) for y in flips)
    # a shift moves a single bright column by at most 10% of the width (2 px here)
    img = np.zeros((1, 16, 20, 3), "float32")
    img[0, :, 10, :] = 255
    for s in range(5):
        y = np.asarray(data.fused_augmenter(dict(off, width_shift=0.1), s)(tf.constant(img)))
        col = int(np.argmax(y[0, 8, :, 0]))
        assert abs(col - 10) <= 2
    pub = dict(off, rotation=10.0, zoom=0.1, width_shift=0.1, height_shift=0.1, horizontal_flip=True)
    y = np.asarray(data.fused_augmenter(pub, 3)(tf.constant(x)))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255


def test_fused_resize_matches_resize_then_warp():
    """Training resamples once: the resize to the target size is composed into the
    augmentation warp. On a smooth synthetic image it matches the two-step reference
    (tf.image.resize, then the same random warp at the target size) within interpolation error,
    and with only a flip drawn it is exactly the plain resize (or its mirror)."""
    from hpctl_trainer.compat import tf

    yy, xx = np.mgrid[0:48, 0:60].astype("float32")
    img = np.stack([xx * 4, yy * 5, 128 + 100 * np.sin(xx / 6) * np.cos(yy / 5)], -1)[None]
    pub = {"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
           "horizontal_flip": True, "vertical_flip": False}
    for s in range(4):
        tf.random.set_seed(s)
        ref = np.asarray(data.fused_augmenter(pub, 1)(tf.image.resize(img, [32, 40])))
        tf.random.set_seed(s)
        out = np.asarray(data.fused_augmenter(pub, 1, output_size=(32, 40))(tf.constant(img)))
        assert out.shape == ref.shape == (1, 32, 40, 3) and out.dtype == np.float32
        d = np.abs(out - ref)
        assert d.mean() < 1.0 and d.max() < 12.0, (s, d.mean(), d.max())
    flip = dict(pub, rotation=0, zoom=0, width_shift=0, height_shift=0)
    plain = np.asarray(tf.image.resize(img, [24, 30]))[0]
    for s in range(4):
        out = np.asarray(data.fused_augmenter(flip, s, output_size=(24, 30))(tf.constant(img)))[0]
        assert np.allclose(out, plain, atol=1e-3) or np.allclose(out, plain[:, ::-1], atol=1e-3)


def test_preprocess_equals_keras_preprocess_input():
    """The tensor preprocess functions are Keras's preprocess_input, value for value."""
    x = np.random.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    for backbone, ref in (("resnet50", compat.keras.applications.resnet50.preprocess_input),
                          ("mobilenetv2", compat.keras.applications.mobilenet_v2.preprocess_input),
                          ("efficientnetb0", compat.keras.applications.efficientnet.preprocess_input),
                          ("tinycnn", compat.keras.applications.mobilenet_v2.preprocess_input)):
        got = np.asarray(data.preprocess_fn(backbone)(x))
        assert got.dtype == np.float32
        assert np.allclose(got, np.asarray(ref(x.copy())), atol=1e-5, rtol=0), backbone


def test_training_pipeline_shapes_and_eval_unchanged(dataset, tmp_path):
    """Training (fused warp from the decoded image, with and without cache; JPEG decoded at a
    reduced scale when large) gives float32 batches of the target size in the preprocessed
    range; evaluation and predict keep the plain decode and resize."""
    from PIL import Image

    paths, labels, names = data.list_images(dataset["train"])
    pub = {"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
           "horizontal_flip": True, "vertical_flip": False}
    big = tmp_path / "big.jpg"  # 4x the target: decoded at 1/4 scale for training
    Image.fromarray(np.full((128, 140, 3), 200, np.uint8)).save(str(big))
    for cache in (False, True):
        ds = data.make_dataset(paths[:6] + [str(big)], labels[:6] + [1], 2, (32, 32), 4, "mobilenetv2",
                               training=True, seed=3, aug=pub, cache=cache)
        xs = [np.asarray(x) for x, _ in ds]
        assert [x.shape for x in xs] == [(4, 32, 32, 3), (3, 32, 32, 3)]
        allx = np.concatenate(xs)
        assert allx.dtype == np.float32 and allx.min() >= -1.0 and allx.max() <= 1.0
    from hpctl_trainer.compat import tf

    ev = np.concatenate([np.asarray(x) for x, _ in data.make_dataset(paths[:3], labels[:3], 2, (32, 32), 8,
                                                                       "resnet50")])
    ref = np.stack([np.asarray(tf.image.resize(tf.io.decode_image(tf.io.read_file(p), channels=3,
                                                                    expand_animations=False), [32, 32]))
                    for p in paths[:3]])
    ref = ref[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    assert np.allclose(ev, ref, atol=1e-4)
    assert np.allclose(np.asarray(data.load_image_batch(paths[:3], (32, 32), "resnet50")), ref, atol=1e-4)


def test_sweep_trial_placeholder(monkeypatch):
    """A sweep's job script passes {trial} in --spec/--run-dir; HPCTL_TRIAL fills it in,
    and anything but a trial number there is bad input."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import train
    from hpctl_trainer import InputError

    monkeypatch.setenv("HPCTL_TRIAL", "7")
    assert train.with_trial("/r/trials/{trial}/spec.resolved.json") == "/r/trials/7/spec.resolved.json"
    assert train.with_trial("/r/spec.resolved.json") == "/r/spec.resolved.json"
    assert train.with_trial(None) is None
    for bad in ("", "1;x", "../1"):
        monkeypatch.setenv("HPCTL_TRIAL", bad)
        with pytest.raises(InputError):
            train.with_trial("/r/trials/{trial}")


def test_class_order_is_keras_directory_order(tmp_path):
    """predict's labels come from the sorted class folder names; Keras's own
    image_dataset_from_directory (and ImageDataGenerator.flow_from_directory, which the
    published notebook used) order them the same way, so label 1 -- a positive logit, the
    notebook's `preds[0][0] > 0` -- is the same class in both: "urban" of rural/urban."""
    from PIL import Image
    names = ["urban", "rural", "Zoo", "_other", "10", "9"]
    for n in names:
        os.makedirs(str(tmp_path / n))
        Image.new("RGB", (8, 8)).save(str(tmp_path / n / "a.png"))
    _, _, ours = data.list_images(str(tmp_path))
    utils = compat.keras.utils
    load = getattr(utils, "image_dataset_from_directory", None)
    if load is None:  # Keras 2.7 keeps it under preprocessing
        load = compat.keras.preprocessing.image_dataset_from_directory
    theirs = load(str(tmp_path), image_size=(8, 8), batch_size=2, shuffle=False).class_names
    assert ours == list(theirs) == sorted(names)
    two = tmp_path / "two"
    for n in ("urban", "rural"):
        os.makedirs(str(two / n))
        Image.new("RGB", (8, 8)).save(str(two / n / "a.png"))
    assert data.list_images(str(two))[2] == ["rural", "urban"]  # index 1: urban
