"""Running OLD and NEW on the same sample batch, and comparing what they give."""

import contextlib
import os
import re

import numpy as np
import tensorflow as tf

from upgrade_export import DEQUEUE, Refusal, go_on
from upgrade_export.batch_size import candidate_sizes
from upgrade_export.cut import constant
from upgrade_export.new import load_averages, write_new
from upgrade_export.old import loadable_copy

PROBE = 3  # A batch size to try first: few exports bake this one in.


TOLERANCE = 1e-6


@contextlib.contextmanager
def loaded(path, averages=None):
    """The SavedModel at path, loaded in a graph of its own: (session, its serving_default).

    averages: the moving averages to load into its variables (new.load_averages).
    """
    go_on()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        load_averages(sess, os.path.join(path, "variables", "variables"), averages)
        yield sess, meta.signature_def["serving_default"]


def run_export(path, feeds, extra=()):
    """Loads the export at path in a graph of its own; its outputs for feeds by tensor name.

    extra: the names of other tensors to fetch, under their names.
    """
    with loaded(path) as (sess, signature):
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return sess.run({**fetches, **{name: name for name in extra}}, feeds)


def run_new(path, names, values, extra=()):
    """The new export at path fed values by input key (names: their tensor names)."""
    return run_export(path, {names[key]: value for key, value in values.items()}, extra)


def through_old_iterator(job, path, values):
    """The old export at path fed values at its pipeline's placeholders, through its iterator.

    A signature input that only the pipeline reads (a batch size) is given
    the number of rows.
    """
    rows = next(len(value) for value in values.values() if np.ndim(value))
    with loaded(path, job.averages) as (sess, signature):
        feeds = {i.tensor: values[i.key] for i in job.inputs}
        for info in signature.inputs.values():
            feeds.setdefault(info.name, np.array(rows, tf.as_dtype(info.dtype).as_numpy_dtype))
        sess.run(job.front.init, feeds)
        return sess.run({key: info.name for key, info in signature.outputs.items()}, feeds)


def cause(error):
    """What a TensorFlow error says, in one line: its first sentence, and the op that failed."""
    message = str(getattr(error, "message", None) or error)
    # TensorFlow 2's session errors start with a header and a trace of where
    # the op was made: the cause is the first line that is neither.
    skip = re.compile(r"Graph execution error|Detected at node|Node:|\s|$")
    lines = [line for line in message.splitlines() if not skip.match(line)] or [message]
    line = lines[0].strip().split(" with error ")[0]  # (A NodeDef's whole description.)
    node = re.search(r"\{\{node ([^}]+)\}\}", message)
    op = node.group(1) if node else getattr(getattr(error, "op", None), "name", None)
    return f"{line} (at op {op})" if op and op not in line else line


def sample(inputs, rows, rng, words=None):
    """Values to check with: normal floats, integer ones (a valid id or length), rows of them.

    Strings are sentences of 1 to 5 of words[1] (the words of a vocabulary
    file: see vocabulary()). An input that is not batched, the model reads
    directly: an integer scalar is given the number of rows (a batch size), a
    float one 1.0 (a keep probability), a bool False (not training).
    """
    values = {}
    for key, _, dtype, shape, batched in inputs:
        dims = [d or 10 for d in shape] if shape.rank else []
        if batched:
            dims[0] = rows
        if dtype == tf.string:
            vocabulary = words[1] if words else ["a", "b", "c"]
            sentences = [
                " ".join(rng.choice(vocabulary, rng.integers(1, 6)))
                for _ in range(np.prod(dims, dtype=int))
            ]
            values[key] = np.array([s.encode() for s in sentences], object).reshape(dims)
        elif not dims:
            scalar = rows if dtype.is_integer else 1.0 if dtype.is_floating else 0
            values[key] = np.array(scalar, dtype.as_numpy_dtype)
        elif dtype.is_floating:
            values[key] = rng.standard_normal(dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_integer:
            values[key] = np.ones(dims, dtype.as_numpy_dtype)
        else:
            values[key] = np.zeros(dims, dtype.as_numpy_dtype)
    return values


def vocabulary(folder, assets):
    """The words of the first vocabulary file among assets: (its name, words), or None."""
    for filename in sorted(assets.values()):
        with open(os.path.join(folder, filename), "rb") as f:
            lines = [line.strip().decode(errors="replace") for line in f]
        words = [w for w in lines if w and not w.startswith("<") and len(w.split()) == 1]
        if words:
            return filename, words
    return None


def resized(inputs, values, rows, extra):
    """The sample made `rows` rows: its own rows, then extra's; a batch size made to agree."""
    batch = {}
    for key, _, dtype, _, batched in inputs:
        value = values[key]
        if batched:
            value = np.concatenate([value, extra[key]])[:rows]
        elif not np.ndim(value) and dtype.is_integer:
            value = np.array(rows, value.dtype)
        batch[key] = value
    return batch


def scalars_fed(inputs, values, words=None):
    """What the sample fed but numbers: ' (src: sentences of words of source.txt, batch_size 3)'."""
    fed = [
        f"{i.key}: sentences of words of {words[0] if words else 'a, b and c'}"
        for i in inputs
        if i.dtype == tf.string and np.ndim(values[i.key])
    ]
    fed += [f"{i.key} {values[i.key].item()}" for i in inputs if not np.ndim(values[i.key])]
    return f" ({', '.join(fed)})" if fed else ""


def largest_difference(a, b):
    """Between outputs by key: floats' largest difference; strings and integers are equal or not (inf)."""
    largest = 0.0
    for key, value in a.items():
        value, other = np.asarray(value), np.asarray(b[key])
        if value.dtype.kind == "f":
            largest = max(largest, float(np.max(np.abs(value - other), initial=0.0)))
        elif value.shape != other.shape or (value != other).any():
            largest = float("inf")
    return largest


def run_old(job, path, rng):
    """OLD, copied to path as a SavedModel, fed a sample batch at the cut.

    Returns (rows, values, outputs). A batch size the graph holds shows in the
    shapes it declares (a queue's, the number of rows it dequeues), or as the
    only size that runs.
    """
    loadable_copy(job.old, path)
    shapes = [info.tensor_shape for info in job.old.signature.outputs.values()]
    declared = set()
    for name in job.cut.used:
        node = job.cut.nodes[name]
        if node.op in DEQUEUE:
            declared.add(constant(job.cut, node.input[1]))
        else:
            shapes += node.attr["output_shapes"].list.shape
    declared |= {s.dim[0].size for s in shapes if s.dim and s.dim[0].size > 0}
    declared.discard(None)
    errors = []
    try:
        with loaded(path, job.averages) as (sess, signature):
            fetches = {key: info.name for key, info in signature.outputs.items()}
            for rows in (
                sorted(declared) if len(declared) == 1 else [PROBE, *candidate_sizes(job.cut)]
            ):
                values = sample(job.inputs, rows, rng)
                try:
                    return (
                        rows,
                        values,
                        sess.run(fetches, {i.tensor: values[i.key] for i in job.inputs}),
                    )
                except (tf.errors.OpError, ValueError) as error:
                    errors.append(f"{scalars_fed(job.inputs, values)}: {cause(error)}")
    except (tf.errors.OpError, ValueError, KeyError) as error:
        raise Refusal(
            f"{job.old.name} does not load in TensorFlow {tf.__version__}: {cause(error)}"
        ) from None
    raise Refusal(f"{job.old.name} does not run on a sample batch{errors[0]}")


def at_other_sizes(path, job, names, values, outputs, extra):
    """None when the export at path gives the same rows in other batches; else why not.

    The batches: the sample with three more rows after it, its first 7 rows
    (or those and more), and its first row alone. Outputs that are not one row
    per input row (a metric of the batch) only have to run.
    """
    rows = next((len(values[i.key]) for i in job.inputs if i.batched), None)
    if rows is None:
        return None  # No batch to change.
    for size in sizes_checked(rows):
        try:
            got = run_new(path, names, resized(job.inputs, values, size, extra))
        except (tf.errors.OpError, ValueError) as error:
            return f"a batch of {size} fails: {cause(error)}"
        for key, value in got.items():
            if not np.ndim(outputs[key]) or len(outputs[key]) != rows:
                continue
            if np.shape(value)[:1] != (size,):
                return f"a batch of {size} gives {key} of shape {np.shape(value)}"
            common = min(size, rows)
            if largest_difference({key: value[:common]}, {key: outputs[key][:common]}) > TOLERANCE:
                return f"a batch of {size} gives other values of {key} for the same rows"
    return None


def sizes_checked(rows):
    """The batch sizes NEW is checked with, beside the sample's."""
    return list(dict.fromkeys(size for size in (rows + 3, 7, 1) if size != rows))


def any_batch_size(path, job, fixes, batch, values, expected, extra):
    """Writes NEW with the batch size taken from its input (fixes); whether it is safe."""
    if not fixes:
        return False
    try:
        names = write_new(path, job, fixes, batch)
        got = run_new(path, names, values)
    except (tf.errors.OpError, ValueError):
        return False
    if largest_difference(got, expected) > TOLERANCE:
        return False
    return at_other_sizes(path, job, names, values, got, extra) is None
