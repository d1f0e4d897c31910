"""Upgrade a TF1 model that reads its input through a tf.data iterator or a queue.

Usage: python3 examples/upgrade_export.py [OPTIONS] OLD NEW

OLD is a SavedModel's folder; a training checkpoint: its prefix (as
train/model.ckpt-2000), or a folder with a checkpoint file (an Estimator's
model_dir, a MonitoredTrainingSession's checkpoint_dir: its latest); or a
frozen GraphDef (.pb, binary or text). NEW, a folder it creates, is a
SavedModel whose serving_default takes what the model read from its
pipeline, with no iterator, queue or dataset op left. OLD is only read.
Nothing is written unless NEW computes what OLD does on sample batches.

Options:
  --output KEY=TENSOR  an output of NEW, under KEY (repeatable). By default:
                       the old signature's; for a checkpoint or a frozen
                       graph, chosen from the graph (it says which)
  --moving-averages    the model's variables take their moving averages
                       (tf.train.ExponentialMovingAverage) from the checkpoint
  --at-iterator        cut at the iterator even where the pipeline's work on
                       each element could be carried over
  -h, --help           this text
"""

import collections
import os
import re
import signal
import sys

# Its parts, in upgrade_export/ beside it: that folder first on the path, as
# Python puts it when this file is run (and not when runpy runs it, as the tests do).
HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isfile(os.path.join(HERE, "upgrade_export", "__init__.py")):
    sys.exit("No upgrade_export/ beside upgrade_export.py: copy it from examples/ too.")
sys.path.insert(0, HERE)
from upgrade_export import DEQUEUE, GET_NEXT, STOPPED, Refusal, go_on, split_ref  # No TF here.
from upgrade_export.paths import locate

USAGE = "usage: python3 {} [--output KEY=TENSOR ...] [--moving-averages] [--at-iterator] OLD NEW"
FLAGS = ("--moving-averages", "--at-iterator")
# The command line: OLD located (a paths.Where), NEW, --output's {key: tensor},
# and the flags given.
Arguments = collections.namedtuple("Arguments", "where new outputs flags")


def arguments(argv):
    """The command line, checked as far as can be without TensorFlow."""
    usage = USAGE.format(sys.argv[0])
    argv, paths, outputs, flags = list(argv), [], {}, set()
    while argv:
        arg = argv.pop(0)
        if arg in FLAGS:
            flags.add(arg)
        elif arg == "--output" or arg.startswith("--output="):
            value = arg.partition("=")[2] if "=" in arg else argv.pop(0) if argv else ""
            key, _, tensor = value.partition("=")
            if not re.fullmatch(r"[\w.\-/]+", key) or not tensor:
                raise Refusal(f"--output takes KEY=TENSOR (logits=dense/BiasAdd:0), not {value!r}")
            if key in outputs:
                raise Refusal(f"--output {key} is given twice")
            outputs[key] = tensor
        elif arg.startswith("-"):
            raise Refusal(f"no option {arg}: {usage}")
        else:
            paths.append(arg)
    if len(paths) != 2 or not all(paths):
        raise Refusal(usage)
    old, new = paths
    where = locate(old)
    if os.path.lexists(new):
        raise Refusal(f"{new} already exists: give the name of a folder to create")
    parent = os.path.dirname(os.path.abspath(new))
    if not os.path.isdir(parent):
        raise Refusal(f"no folder {parent} to write {new} in")
    if not os.access(parent, os.W_OK):
        raise Refusal(f"cannot write {new}: {parent} is not a folder you can write to")
    real_old = os.path.realpath(old)
    if (
        os.path.isdir(old)
        and os.path.commonpath([real_old, os.path.realpath(os.path.abspath(new))]) == real_old
    ):
        raise Refusal(f"{new} is inside {old}, which this program never writes to")
    return Arguments(where, new, outputs, flags)


def stop_now(signum, frame):
    """Ctrl-C or kill before anything is written: the run ends at once, in one line."""
    sys.stderr.write("upgrade_export.py: interrupted before the end: nothing written\n")
    os._exit(1)


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    # Before the imports, which take seconds.
    signal.signal(signal.SIGINT, stop_now)
    signal.signal(signal.SIGTERM, stop_now)
    try:
        arguments(sys.argv[1:])
    except Refusal as refusal:
        sys.exit(f"upgrade_export.py: {refusal}")

import shutil
import tempfile
import types

import numpy as np

# Before the import: no C++ info or warning logs (a batch size tried may fail).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

tf.get_logger().setLevel("ERROR")  # The compat.v1 calls below are meant.

from upgrade_export.batch_size import batch_constants, rows_of
from upgrade_export.check import (
    TOLERANCE,
    any_batch_size,
    at_other_sizes,
    cause,
    largest_difference,
    run_new,
    run_old,
    sample,
    scalars_fed,
    sizes_checked,
    through_old_iterator,
    vocabulary,
)
from upgrade_export.cut import Cut, describe_cut, new_inputs, unknown_op
from upgrade_export.new import kilobytes, pipeline_left, write_new
from upgrade_export.old import files, moving_averages, read, variable_defs
from upgrade_export.pipeline import pipeline_front

# ----------------------------------------------------------------------------
# The upgrade.


def upgrade(args):
    old = read(args.where, args.outputs)
    cut = Cut(old.meta, old.signature)
    if not cut.used and old.kind == "export":
        raise Refusal(
            f"{old.name}: its signature's outputs do not go through a tf.data iterator once "
            f"its inputs are fed, so it serves as it is: there is nothing to upgrade"
        )
    unknown = unknown_op(cut, old.meta.graph_def.library)
    if unknown:
        raise Refusal(
            f"{old.name} does not load in TensorFlow {tf.__version__}: its model uses the op "
            f"{unknown[0]} (node {unknown[1]}), which this TensorFlow does not have"
        )
    inputs, dropped = new_inputs(cut, old.signature)
    if not cut.used:
        front, why = None, None  # Placeholders: nothing to carry over.
    elif "--at-iterator" in args.flags:
        front, why = None, "as --at-iterator asks"
    else:
        front, why = pipeline_front(cut, old.signature, old.meta)
    averages = moving_averages(old, cut)
    if "--moving-averages" in args.flags and not averages:
        raise Refusal(
            f"--moving-averages: {old.name} holds no moving average of the model's variables "
            f"(VARIABLE/ExponentialMovingAverage)"
        )
    use = averages if "--moving-averages" in args.flags else None
    job = types.SimpleNamespace(old=old, cut=cut, inputs=inputs, front=None, averages=use)
    report(job, dropped, front, why, averages)
    missing = sorted(
        f
        for f in {**cut.assets, **(front.assets if front else {})}.values()
        if not os.path.isfile(os.path.join(old.assets or "", f))
    )
    if missing:
        raise Refusal(f"{old.name} has no assets/{missing[0]}, the file its tables are filled from")
    new = args.new
    try:
        staging = tempfile.mkdtemp(
            ".tmp", ".upgrade_export-", os.path.dirname(os.path.abspath(new))
        )
    except OSError as error:
        raise Refusal(f"cannot write beside {new}: {error.strerror}") from None
    try:
        rng = np.random.default_rng(0)
        copy = os.path.join(staging, "old")
        batch, values, expected = run_old(job, copy, rng)
        extra = sample(inputs, 7, rng)
        # The model as it was, fed at the cut.
        path = os.path.join(staging, "as_old")
        try:
            names = write_new(path, job)
            got = run_new(path, names, values)
        except (tf.errors.OpError, ValueError) as error:
            raise Refusal(
                f"cannot rebuild the model without its pipeline: {cause(error)}"
            ) from None
        difference = largest_difference(got, expected)
        print(f"check: old and new fed the same sample batch of {batch}", end="")
        print(f"{scalars_fed(inputs, values)}: largest difference {difference:.3g}")
        if not difference <= TOLERANCE:
            raise Refusal(f"the new export would compute other outputs: {new} not written")
        if front:
            # Then with the pipeline in front, fed what the pipeline took.
            job, path, names, values, got, expected, extra = with_pipeline(
                job, front, staging, copy, path, names, batch, rng
            )
        fixes = batch_constants(cut, batch)
        any_batch = os.path.join(staging, "any_batch")
        failing = at_other_sizes(path, job, names, values, expected, extra)
        sizes = " and ".join(", ".join(map(str, sizes_checked(batch))).rsplit(", ", 1))
        if failing is None:
            print(f"batch size: any, as the old {old.kind} (checked with {sizes})")
        elif any_batch_size(any_batch, job, fixes, batch, values, expected, extra):
            path = any_batch
            print(
                f"batch size: the old {old.kind} runs batches of {batch} only (its graph holds "
                f"{batch} in {len(fixes)} constant{'s' * (len(fixes) > 1)}); the new one takes "
                f"the batch size from its input: any batch size (checked with {sizes})"
            )
        else:
            # Written again, its inputs declaring that size: a server can tell.
            path = os.path.join(staging, "pinned")
            names = write_new(path, job, pinned=batch)
            got = run_new(path, names, values)
            if largest_difference(got, expected) > TOLERANCE:
                raise Refusal(f"the new export would compute other outputs: {new} not written")
            # Named: the constants that hold the size, those it could not rebuild first.
            fixed = [name for name, *_ in fixes]
            held = [name for name in rows_of(cut, batch) if name not in fixed] + fixed
            names = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            why = (
                f"its graph holds {batch} in {names}, where this program cannot safely take "
                f"it from the input"
                if held
                else failing
            )
            print(f"batch size: {batch} only, as the old {old.kind}: {why}")
        left = pipeline_left(path)
        if left:
            raise Refusal(f"the new export would keep ops of the pipeline ({', '.join(left)})")
        if os.path.lexists(new):
            raise Refusal(f"{new} appeared while this ran: not replaced")
        go_on()
        os.rename(path, new)
    finally:
        shutil.rmtree(staging)
    keys = ", ".join(key for key, *_ in job.inputs) or "nothing"
    print(f"wrote {new}, {kilobytes([new])} ({old.name}: {kilobytes(files(old))}): ", end="")
    print(f"its serving_default takes {keys}{without(cut)}")


def report(job, dropped, front, why, averages):
    old, cut, inputs = job.old, job.cut, job.inputs
    print(f"{old.name} reads its input {through(cut)}:")
    if old.kind == "checkpoint":
        latest = f", the latest in {old.name}" if old.path != old.name else ""
        print(f"  checkpoint: {old.path}{latest}")
    if old.chosen:
        print(f"  {old.chosen}")
    for name in sorted(cut.used):
        print(f"  {describe_cut(cut, name)}")
    if front:
        taken = [s.key for s in front.sources]
        steps = f"{len(front.maps)} map()" + ("s" if len(front.maps) > 1 else "")
        batch = "padded_batch()" if front.batch.op.startswith("Padded") else "batch()"
        print(f"  pipeline: from_tensor_slices({', '.join(taken)}), {steps}, {batch}: carried over")
        for key, tensor, dtype, shape, _ in front.sources:
            print(f"  kept:    {tensor} as input {key!r}: {dtype.name} {dims(shape)}, as fed to it")
    for key, tensor, dtype, shape, _ in inputs:
        if front and split_ref(tensor)[0] in cut.used:
            print(f"  made:    {tensor}: {dtype.name} {dims(shape)}, by the pipeline from it")
        else:
            print(f"  kept:    {tensor} as input {key!r}: {dtype.name} {dims(shape)}")
    for tensor, dtype, shape in dropped:
        print(f"  dropped: {tensor}: {dtype.name} {dims(shape)}, which no output uses")
    unused = sorted(key for tensor, key in cut.fed.items() if tensor not in cut.fed_used)
    taken = [s.key for s in front.sources] if front else []
    reused = [key for key in unused if key in {i.key for i in inputs} and key not in taken]
    fed = "signature inputs" if old.kind == "export" else "placeholders"
    if set(unused) - set(reused) - set(taken):
        dropped = ", ".join(key for key in unused if key not in reused + taken)
        print(f"  dropped: {fed} {dropped}, which only feed the iterator")
    if reused:
        print(f"  reused:  {', '.join(reused)}, now the keys of the batches made of their data")
    if why:
        batches = (
            "the batches the queue gave" if "queue" in pipelines(cut) else "the iterator's outputs"
        )
        print(f"  pipeline: not carried over ({why}): the new export takes {batches}")
    total = len(list(variable_defs(old.meta)))
    kept = len(cut.variables) + len(cut.converted)
    made = f"; {len(cut.converted)} reference ones made resource" if cut.converted else ""
    if not total:
        print("  variables: none, the weights are constants of the graph")
        return
    print(f"  variables: {kept} of {total}, the model's{made}")
    if job.averages:
        print(f"  weights: the moving averages of {len(averages)}, as --moving-averages asks")
    elif averages:
        print(
            f"  weights: as trained; the checkpoint holds moving averages of {len(averages)} "
            f"(--moving-averages takes those)"
        )


def pipelines(cut):
    """What the model reads its batches from: ["iterator"], ["queue"], both, or none."""
    return [
        kind
        for kind, ops in (("iterator", GET_NEXT), ("queue", DEQUEUE))
        if any(cut.nodes[name].op in ops for name in cut.used)
    ]


def through(cut):
    """How the model reads its input: 'through a tf.data iterator', 'through a queue', ..."""
    kinds = [{"iterator": "a tf.data iterator", "queue": "a queue"}[k] for k in pipelines(cut)]
    return f"through {' and '.join(kinds)}" if kinds else "from placeholders, with no pipeline"


def without(cut):
    """', with no iterator', ', with no queue', or nothing for a model fed by placeholders."""
    kinds = pipelines(cut)
    return f", with no {' or '.join(kinds)}" if kinds else ""


def dims(shape):
    return "of unknown shape" if shape.rank is None else str(tuple(shape.as_list()))


def with_pipeline(job, front, staging, copy, as_old, as_old_names, rows, rng):
    """Writes the export with the pipeline's work in front, and checks it.

    What it is checked against: the old export fed the same rows through its
    own iterator; or, where the old pipeline does not run here (a TF 1.x one),
    the model as it was (the export at as_old) fed what the new pipeline made.
    Returns what the rest of the upgrade goes on with.
    """
    get_next = {i.tensor for i in job.inputs if split_ref(i.tensor)[0] in job.cut.used}
    inputs = front.sources + [i for i in job.inputs if i.tensor not in get_next]
    original = job.inputs
    job = types.SimpleNamespace(**{**vars(job), "inputs": inputs, "front": front})
    words = vocabulary(job.old.assets, front.assets)
    values, extra = sample(inputs, rows, rng, words), sample(inputs, 7, rng, words)
    path = os.path.join(staging, "pipeline")
    try:
        names = write_new(path, job)
        got = run_new(path, names, values, [names[t] for t in sorted(get_next)])
    except (tf.errors.OpError, ValueError) as error:
        raise Refusal(f"cannot run the pipeline on the request's rows: {cause(error)}") from None
    made = {t: got.pop(names[t]) for t in get_next}
    fed = scalars_fed(inputs, values, words)
    try:
        expected = through_old_iterator(job, copy, values)
        against = "the old one fed the same through its iterator"
    except (tf.errors.OpError, ValueError) as error:
        ids = {i.key: made[i.tensor] if i.tensor in made else values[i.key] for i in original}
        expected = run_new(as_old, as_old_names, ids)
        against = f"the model fed what it made (the old pipeline does not run here: {cause(error)})"
    difference = largest_difference(got, expected)
    print(
        f"check: the new export fed {rows} rows{fed}, {against}: largest difference {difference:.3g}"
    )
    if not difference <= TOLERANCE:
        raise Refusal("the new export's pipeline would compute other outputs: nothing written")
    return job, path, names, values, got, expected, extra


def main(argv):
    upgrade(arguments(argv))


def stop(signum, frame):
    # Noted, and acted on between two steps: an exception raised inside
    # TensorFlow's code can come out as another one, or none.
    STOPPED.append(signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        main(sys.argv[1:])
    except Refusal as refusal:
        sys.exit(f"upgrade_export.py: {refusal}")
    except KeyboardInterrupt:
        sys.exit("upgrade_export.py: interrupted before the end: nothing written")
    finally:
        # The end is decided: a signal while TensorFlow shuts down changes nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
