"""Backbone weights: the published Keras no-top ImageNet files, read from a cache folder on
the shared file system and checked against trainer/weights.json; never downloaded unless the
spec allows it."""

import hashlib
import json
import os
import shutil
import sys
import tempfile

from . import InputError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS_JSON = os.path.join(HERE, "weights.json")


def table():
    with open(WEIGHTS_JSON) as f:
        return json.load(f)


def file_digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path, entry, backbone):
    """Raise InputError unless path matches the checksum (or size) in entry."""
    checked = False
    for algo in ("sha256", "md5"):
        want = entry.get(algo)
        if want:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                raise InputError(
                    "weights file %s for %s is corrupt or not the published one: %s %s, expected %s "
                    "(delete it and fetch it again, e.g. with `hpctl weights fetch`)"
                    % (path, backbone, algo, got, want))
            checked = True
    size = entry.get("size")
    if size is not None:
        got = os.path.getsize(path)
        if got != int(size):
            raise InputError("weights file %s for %s is corrupt or incomplete: %d bytes, expected %d"
                             % (path, backbone, got, int(size)))
        if not checked:
            print("trainer: note: Keras publishes no checksum for %s; checked the size only" % backbone,
                  file=sys.stderr)
        checked = True
    return checked


def _download(url, dest, entry, backbone):
    from urllib.request import urlopen

    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".part-", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as out:
            resp = urlopen(url, timeout=60)
            shutil.copyfileobj(resp, out)
        verify(tmp, entry, backbone)
        os.replace(tmp, dest)
    except InputError:
        os.remove(tmp)
        raise
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise InputError("cannot download %s weights from %s: %s" % (backbone, url, e))


def resolve(model_spec):
    """Path of a verified weights file for the backbone, or None for random init."""
    backbone = model_spec["backbone"]
    w = model_spec.get("weights")
    if w in (None, "", "none"):
        return None
    entries = table()
    if w == "imagenet":
        entry = entries.get(backbone)
        if entry is None:
            raise InputError("no published ImageNet weights for backbone %r (weights.json has %s)"
                             % (backbone, ", ".join(sorted(entries))))
        cache = model_spec.get("weights_cache") or ""
        path = os.path.join(cache, entry["file"])
        if not os.path.isfile(path):
            if not model_spec.get("allow_download"):
                raise InputError(
                    "ImageNet weights for %s not found at %s; fetch them there (`hpctl weights fetch`, "
                    "or download %s) or set model.allow_download: true" % (backbone, path, entry["url"]))
            _download(entry["url"], path, entry, backbone)
        verify(path, entry, backbone)
        return path
    path = w
    if not os.path.isfile(path):
        raise InputError("weights file %s (model.weights) does not exist" % path)
    # A local copy of a published file is checked against its published checksum too.
    for name, entry in entries.items():
        if os.path.basename(path) == entry["file"]:
            verify(path, entry, name)
    return path
