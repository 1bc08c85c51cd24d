"""In-process units: backbones build, augmentation matches the published settings, specs."""

import os

import numpy as np
import pytest

from hpctl_trainer import compat, data, model as mdl, spec as specmod


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenetv2", "efficientnetb0", "tinycnn"])
def test_backbones_build(backbone):
    for classes in (2, 3):
        m = mdl.build({"backbone": backbone, "dropout": 0.1}, (32, 32), classes)
        mdl.compile_model(m, {"name": "rmsprop", "learning_rate": 1e-5}, classes)
        x = data.preprocess_fn(backbone)(np.random.uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
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


def test_augmenter_matches_published_settings():
    aug = data.augmenter({"rotation": 10.0, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1,
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
    assert data.augmenter({"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0,
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
