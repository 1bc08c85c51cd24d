"""trainer/backbones.json: the backbones, their keras.applications model, preprocessing mode
and smallest input side. hpctl validates specs against the same file (trainer.Backbones in
Go). No TensorFlow here, so reading a spec does not import it."""

import json
import os

from . import InputError

BACKBONES_JSON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backbones.json")
_table = {}


def backbones():
    """{name: {"application", "preprocessing", "min_image_size"}} from backbones.json. An
    empty application is the trainer's own model (tinycnn)."""
    if not _table:
        try:
            with open(BACKBONES_JSON) as f:
                _table.update(json.load(f))
        except (OSError, ValueError) as e:
            raise InputError("cannot read %s: %s" % (BACKBONES_JSON, e))
    return _table


def backbone_names():
    return sorted(backbones())


def backbone_entry(name):
    table = backbones()
    if name not in table:
        raise InputError("unknown backbone %r (backbones.json has %s)" % (name, ", ".join(sorted(table))))
    return table[name]
