"""Which kind OLD is, and where its files are: checked before TensorFlow's import, which takes seconds."""

import collections
import glob
import os
import re

from upgrade_export import Refusal

# OLD located: its kind ("export", "checkpoint" or "graph"), the path of what
# is read (a SavedModel's folder, a checkpoint's prefix, a GraphDef's file),
# and OLD as it was given.
Where = collections.namedtuple("Where", "kind path given")

CHECKPOINT_FILE = re.compile(r"(.+)\.(index|meta|data-\d{5}-of-\d{5})$")


def locate(old):
    """Where OLD is: a SavedModel, a checkpoint (its prefix, a file of it, or its folder), a file."""
    if os.path.isdir(old):
        if os.path.isfile(os.path.join(old, "saved_model.pb")):
            return Where("export", old, old)
        if os.path.isfile(os.path.join(old, "checkpoint")):
            return Where("checkpoint", checked_prefix(latest(old)), old)
        raise Refusal(
            f"{old} holds neither a SavedModel (no saved_model.pb) nor checkpoints "
            f"(no checkpoint file)"
        )
    part = CHECKPOINT_FILE.match(old)
    if os.path.isfile(old) and not part:
        return Where("graph", old, old)
    prefix = part.group(1) if part else old
    if os.path.exists(prefix + ".index") or os.path.exists(prefix + ".meta"):
        return Where("checkpoint", checked_prefix(prefix), old)
    raise Refusal(f"{old}: no such file or folder")


def latest(folder):
    """The prefix of the checkpoint a folder's checkpoint file names as its latest."""
    with open(os.path.join(folder, "checkpoint"), errors="replace") as f:
        found = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', f.read(), re.MULTILINE)
    if not found:
        raise Refusal(f"{os.path.join(folder, 'checkpoint')} names no checkpoint")
    path = re.sub(r"\\(.)", r"\1", found.group(1))
    prefix = os.path.join(folder, path)  # (An absolute path stays as it is.)
    # Named from the folder as given, where it is there (a checkpoint file
    # written with absolute paths), or if the folder has moved since.
    here = os.path.join(folder, os.path.basename(path))
    if os.path.exists(here + ".index") and (
        not os.path.exists(prefix + ".index")
        or os.path.samefile(prefix + ".index", here + ".index")
    ):
        return here
    return prefix


def checked_prefix(prefix):
    """The prefix of a checkpoint that holds a graph and the values of its variables."""
    if not os.path.isfile(prefix + ".index"):
        if os.path.isfile(prefix + ".meta"):
            raise Refusal(f"{prefix} has a graph but no weights: there is no {prefix}.index")
        raise Refusal(f"no checkpoint {prefix}: there is no {prefix}.index")
    if not glob.glob(glob.escape(prefix) + ".data-?????-of-?????"):
        raise Refusal(f"{prefix} is incomplete: it has no {prefix}.data-... file")
    if not os.path.isfile(prefix + ".meta"):
        raise Refusal(
            f"{prefix} holds weights but not the graph (no {prefix}.meta: saved with "
            f"write_meta_graph=False, as save_and_restore.py's --checkpoint-dir does): "
            f"export the model from the code that builds it instead, as save_and_restore.py "
            f"exports itself (docs/own-model.md shows how for your model)"
        )
    return prefix
