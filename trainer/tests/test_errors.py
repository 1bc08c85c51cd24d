"""Bad input exits 2 with a message that says what is wrong."""

import hashlib
import json
import os
import shutil

import pytest

from conftest import make_images, make_spec, run, train_cmd, write_spec


def run_frozen(spec_path, run_dir):
    return run(train_cmd(spec_path, "frozen", run_dir), cwd=run_dir)


def test_missing_data_folder(dataset, tmp_path):
    data = dict(dataset, train=str(tmp_path / "nope"))
    spec_path, _ = make_spec(str(tmp_path / "run"), data)
    r = run_frozen(spec_path, str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr
    assert "nope does not exist" in r.stderr


def test_single_class_folder(dataset, tmp_path):
    one = make_images(str(tmp_path / "one"), 3, classes=("horizontal",))
    spec_path, _ = make_spec(str(tmp_path / "run"), dict(dataset, val=one))
    r = run_frozen(spec_path, str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr
    assert "1 class folder(s) (horizontal); need at least 2" in r.stderr


def test_imagenet_weights_missing_or_wrong_checksum(dataset, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    run_dir = str(tmp_path / "run")
    spec_path, _ = make_spec(run_dir, dataset, backbone="resnet50", weights="imagenet",
                             weights_cache=str(cache))
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 2, r.stderr
    assert "not found at" in r.stderr and "allow_download" in r.stderr
    # a fake cache entry with the published name but other bytes
    (cache / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"not the weights")
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 2, r.stderr
    assert "corrupt or not the published one" in r.stderr
    assert "4d473c1dd8becc155b73f8504c6f6626" in r.stderr


def test_local_weights_file_loads_then_corrupt_refused(dataset, tmp_path):
    from hpctl_trainer import model as mdl

    wfile = str(tmp_path / "tiny.weights.h5")
    mdl.make_base("tinycnn", (32, 32)).save_weights(wfile)
    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset, weights=wfile, frozen_epochs=1)
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 0, r.stderr
    shutil.rmtree(os.path.join(run_dir, "stages"))
    data = bytearray(open(wfile, "rb").read())
    data[len(data) // 3:len(data) // 3 + 4096] = b"\0" * 4096
    data = data[:len(data) // 2]
    open(wfile, "wb").write(bytes(data))
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 2, r.stderr
    assert "cannot be loaded into tinycnn" in r.stderr


def test_checksum_table(tmp_path, monkeypatch):
    """weights.resolve with a fake weights.json entry: right checksum passes, wrong refused."""
    from hpctl_trainer import InputError, weights

    f = tmp_path / "fake_notop.h5"
    f.write_bytes(b"0123456789" * 100)
    md5 = hashlib.md5(f.read_bytes()).hexdigest()
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    spec = {"backbone": "tinycnn", "weights": "imagenet", "weights_cache": str(tmp_path), "allow_download": False}
    for entry in ({"file": f.name, "url": "x", "md5": md5}, {"file": f.name, "url": "x", "sha256": sha},
                  {"file": f.name, "url": "x", "size": 1000}):
        monkeypatch.setattr(weights, "table", lambda: {"tinycnn": entry})
        assert weights.resolve(spec) == str(f)
    for entry in ({"file": f.name, "url": "x", "md5": "0" * 32}, {"file": f.name, "url": "x", "sha256": "1" * 64},
                  {"file": f.name, "url": "x", "size": 999}):
        monkeypatch.setattr(weights, "table", lambda: {"tinycnn": entry})
        with pytest.raises(InputError):
            weights.resolve(spec)


def test_weights_json_shape():
    from hpctl_trainer import weights

    t = weights.table()
    assert {"resnet50", "mobilenetv2", "efficientnetb0"} <= set(t)
    assert t["resnet50"]["md5"] == "4d473c1dd8becc155b73f8504c6f6626"
    assert t["resnet50"]["file"] == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    for e in t.values():
        assert e["url"].endswith("/" + e["file"])
        assert e.get("md5") or e.get("sha256") or e.get("size")


def test_bad_spec_exits_2(tmp_path):
    p = tmp_path / "spec.json"
    p.write_text("{not json")
    r = run(train_cmd(str(p), "frozen", str(tmp_path)))
    assert r.returncode == 2 and "cannot read spec" in r.stderr
    p.write_text(json.dumps({"data": {"train": "a", "val": "b"}, "model": {}, "stages": [{"name": "x"}]}))
    r = run(train_cmd(str(p), "frozen", str(tmp_path)))
    assert r.returncode == 2 and "spec.json: seed missing; was it written by hpctl?" in r.stderr


@pytest.mark.parametrize("drop, named", [
    (lambda s: s["stages"][1].pop("epochs"), "stages[1].epochs"),
    (lambda s: s["stages"][0]["paths"].pop("history"), "stages[0].paths.history"),
    (lambda s: s["stages"][0].pop("paths"), "stages[0].paths"),
    (lambda s: s["data"].pop("batch_size"), "data.batch_size"),
    (lambda s: s["augment"].pop("zoom"), "augment.zoom"),
    (lambda s: s.pop("training"), "training"),
])
def test_resolved_spec_key_missing_is_named(dataset, tmp_path, drop, named):
    """hpctl writes every default into spec.resolved.json; a missing key is an error naming
    it, never a default of the trainer's own (they drifted: epochs 1 here, 10 in hpctl)."""
    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset)
    drop(spec)
    write_spec(spec_path, spec)
    r = run(train_cmd(spec_path, "frozen", run_dir))
    assert r.returncode == 2, r.stderr
    assert "spec.resolved.json: %s missing; was it written by hpctl?" % named in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(run_dir, "stages"))


def test_unknown_stage_exits_2(dataset, tmp_path):
    run_dir = str(tmp_path / "run")
    spec_path, _ = make_spec(run_dir, dataset)
    r = run(train_cmd(spec_path, "nosuch", run_dir))
    assert r.returncode == 2 and "no stage 'nosuch'" in r.stderr


def test_gpu_stage_without_a_gpu_fails_unless_the_spec_allows_the_cpu(dataset, tmp_path):
    # The tests hide every GPU (CUDA_VISIBLE_DEVICES=""), as a runtime that did not pass
    # the job's GPUs in would.
    run_dir = str(tmp_path / "run")
    spec_path, spec = make_spec(run_dir, dataset, frozen_epochs=1)
    spec["stages"][0]["gpus"] = 2
    write_spec(spec_path, spec)
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 2, r.stderr
    assert "stage frozen asked for 2 GPU(s) but TensorFlow" in r.stderr
    assert "sees none (CUDA_VISIBLE_DEVICES=;" in r.stderr
    assert "training.cpu_fallback: true" in r.stderr
    assert not os.path.exists(os.path.join(run_dir, "stages", "frozen", "history.csv"))

    spec["training"]["cpu_fallback"] = True
    write_spec(spec_path, spec)
    r = run_frozen(spec_path, run_dir)
    assert r.returncode == 0, r.stderr
    assert "training on the CPU, as training.cpu_fallback allows" in r.stderr


def test_fewer_gpus_than_asked_is_a_warning(capsys):
    from hpctl_trainer.stage import check_gpus

    check_gpus("tune", 2, False, seen=["A100"])
    assert "asked for 2 GPU(s); TensorFlow sees 1" in capsys.readouterr().err
    check_gpus("tune", 0, False, seen=[])  # a CPU stage never checks
