"""Atomic file writes: write to a temporary name in the same folder, then rename."""

import csv
import io
import json
import os
import shutil
import tempfile


def _tmp_path(path, suffix=""):
    d = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", suffix=suffix, dir=d)
    os.close(fd)
    return tmp


def write_bytes(path, data):
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    write_text(path, buf.getvalue())


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save_with(path, save_fn):
    """Call save_fn(tmp) with a temporary path that keeps path's suffix (Keras picks the
    format from it), then rename tmp to path."""
    base = os.path.basename(path)
    # keep compound suffixes such as .weights.h5
    suffix = ""
    for s in (".weights.h5", ".keras", ".h5"):
        if base.endswith(s):
            suffix = s
            break
    tmp = _tmp_path(path, suffix=suffix)
    _remove(tmp)  # some savers refuse to overwrite
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path):
    try:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except OSError:
        pass


remove = _remove
