"""docs/upgrading.md: an export fed by an iterator, cut into one that serves, by examples/."""

import contextlib
import json
import logging
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    Forked,
    assert_same_output,
    code_blocks,
    example,
    finish,
    forked_result,
    parse_array,
    read_until,
    script_stderr,
    transcript,
    user_environment,
)
from test_leaving_tf1 import run_in_turn, run_python, saved_model_cli
from test_safety import snapshot

PROGRAMS = (
    "make_2018_export.py",
    "upgrade_export.py",
    "keep_iterator.py",
    "use_new_export.py",
    "run_new_onnx.py",
)
# What the upgrade of some kinds of export (the post's is the page's own) says it
# found: the iterator and how it was started, the inputs kept, what it dropped,
# and what it fed the inputs the model reads directly.
FOUND = {
    "unnamed": [
        "  iterator IteratorV2 (IteratorV2), initializer MakeIterator (MakeIterator)",
        "  kept:    IteratorGetNext:0 as input 'signal_ph': float32 (None, 12, 4)",
        "  dropped: IteratorGetNext:1: int64 (None,), which no output uses",
        "  dropped: signature inputs target_ph, which only feed the iterator",
        "  reused:  signal_ph, now the keys of the batches made of their data",
    ],
    "feedable": [
        (
            "  iterator IteratorFromStringHandleV2 (IteratorFromStringHandleV2), "
            "a feedable iterator, chosen by the string fed to handle_ph"
        ),
        "  kept:    IteratorGetNext:0 as input 'input': float32 (None, 6)",
        "  dropped: IteratorGetNext:1: float32 (None,), which no output uses",
        "  dropped: signature inputs handle, which only feed the iterator",
    ],
    "oneshot": [
        "  iterator OneShotIterator (OneShotIterator), a one-shot iterator, which starts itself",
        "  kept:    IteratorGetNext:0 as input 'input': float32 (None, 5)",
        "  dropped: IteratorGetNext:1: int64 (None,), which no output uses",
    ],
    "batch_size": [
        "  iterator IteratorV2 (IteratorV2), initializer MakeIterator (MakeIterator)",
        "  kept:    IteratorGetNext:0 as input 'x': float32 (None, 7, 3)",
        "  kept:    batch_size:0 as input 'batch_size': int64 ()",
        "  kept:    keep_prob:0 as input 'keep_prob': float32 ()",
        "  dropped: IteratorGetNext:1: int64 (None,), which no output uses",
        "  dropped: signature inputs y, which only feed the iterator",
        "  reused:  x, now the keys of the batches made of their data",
        "  variables: 4 of 14, the model's; 4 reference ones made resource",
        (
            "check: old and new fed the same sample batch of 3 (batch_size 3, keep_prob 1.0): "
            "largest difference 0"
        ),
    ],
    "batchnorm": [
        "  iterator IteratorV2 (IteratorV2), initializer MakeIterator (MakeIterator)",
        "  kept:    IteratorGetNext:0 as input 'images': float32 (None, 8, 8, 1)",
        "  kept:    is_training:0 as input 'is_training': bool ()",
        "  dropped: IteratorGetNext:1: int64 (None,), which no output uses",
        "  dropped: signature inputs labels, which only feed the iterator",
        "  reused:  images, now the keys of the batches made of their data",
        "  variables: 7 of 19, the model's; 7 reference ones made resource",
        "check: old and new fed the same sample batch of 3 (is_training False): largest difference 0",
    ],
    "remainder": [  # The iterator declares (16, 12); the new export, any batch.
        "  iterator IteratorV2 (IteratorV2), initializer MakeIterator (MakeIterator)",
        "  kept:    IteratorGetNext:0 as input 'rows': float32 (None, 12)",
    ],
    "tfrecord": [  # Read from files: the pipeline is not carried over, and says why.
        (
            "  pipeline: not carried over (its elements come from a FlatMapDataset, not from "
            "signature inputs sliced): the new export takes the iterator's outputs"
        ),
    ],
    "dict": [  # Placeholders never named: the keys of the signature that fed them.
        "  iterator IteratorV2 (IteratorV2), initializer MakeIterator (MakeIterator)",
        "  kept:    IteratorGetNext:0 as input 'x': float32 (None, 4)",
        "  kept:    IteratorGetNext:1 as input 'y': float32 (None, 3)",
        "  reused:  x, y, now the keys of the batches made of their data",
    ],
    # What TF1 training left: no signature, the outputs chosen from the graph.
    "saver": [
        "saver/train/model.ckpt-2 reads its input through a tf.data iterator:",
        "  checkpoint: saver/train/model.ckpt-2",
        (
            "  outputs: dense (dense/BiasAdd:0), what the training loss reads of the model; "
            "--output KEY=TENSOR chooses others"
        ),
        "  kept:    IteratorGetNext:0 as input 'features_data_ph': float32 (None, None, 30)",
        "  dropped: placeholders batch_size_ph, labels_data_ph, which only feed the iterator",
        "  variables: 6 of 20, the model's; 6 reference ones made resource",
    ],
    # (The queue's and the Estimator's: their pages' transcripts.)
    "frozen": [
        (
            "  outputs: dense (dense/BiasAdd:0), the graph's ends: what the input reaches and "
            "nothing reads; --output KEY=TENSOR chooses others"
        ),
        "  variables: none, the weights are constants of the graph",
    ],
}


def arrays(stdout):
    """Every numpy-printed 2-D array in stdout, in order."""
    found = re.findall(r"^\[\[.*?\]\]$", stdout, re.MULTILINE | re.DOTALL)
    return [np.array([parse_array(row) for row in text.split("]\n")]) for text in found]


def serving(path):
    """The serve MetaGraphDef of the SavedModel at path, read as a file."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(str(path), "saved_model.pb"), "rb") as file:
        saved = saved_model_pb2.SavedModel.FromString(file.read())
    (meta,) = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    return meta


def assert_cut_free(old, new):
    """NEW has no op of a pipeline (an iterator, a dataset, a queue, a reader), in its
    graph or its functions, and OLD's output keys."""
    meta = serving(new)
    functions = meta.graph_def.library.function
    ops = {node.op for node in [*meta.graph_def.node, *(n for f in functions for n in f.node_def)]}
    assert not [op for op in ops if re.search("Iterator|Dataset|Queue|Reader", op)], ops
    outputs = meta.signature_def["serving_default"].outputs
    assert sorted(outputs) == sorted(serving(old).signature_def["serving_default"].outputs)
    return meta


@contextlib.contextmanager
def as_before():
    """Leaves this process as it was after the program ran in it: its logger and signals."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        logger.setLevel(level)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def loaded(tf, path, output):
    """The export at path, loaded in a TF1 session: a function of its one input."""
    with tf.Graph().as_default(), tf.Session() as sess:
        signature = tf.saved_model.loader.load(sess, ["serve"], str(path)).signature_def
        (inputs,) = signature["serving_default"].inputs.values()
        fetch = signature["serving_default"].outputs[output].name
        yield lambda value: sess.run(fetch, {inputs.name: value})


UPGRADE = example("upgrade_export.py")
USAGE = (
    f"usage: python3 {UPGRADE} [--output KEY=TENSOR ...] [--moving-averages] [--at-iterator] "
    "OLD NEW"
)


def start_upgrade(folder, *args):
    """Starts `python3 examples/upgrade_export.py ARGS` in folder, forked (conftest.Forked).

    From a server that imported TensorFlow under the log level the program sets
    before its imports, in a user's environment (the tutorial set another here).
    """
    level = [("TF_CPP_MIN_LOG_LEVEL", "2")]
    return Forked(folder, [UPGRADE, *args], "keras3", user_environment(), preset=level)


def upgrade_in_process(folder, *args):
    """Runs examples/upgrade_export.py in this process, as `python3 upgrade_export.py ARGS`."""
    argv = sys.argv
    sys.argv = ["upgrade_export.py", *args]
    cwd = os.getcwd()
    os.chdir(str(folder))
    try:
        with as_before():
            runpy.run_path(UPGRADE, run_name="__main__")
        return 0
    except SystemExit as exit:
        return exit.code
    finally:
        sys.argv = argv
        os.chdir(cwd)


@pytest.mark.heavy(10)
def test_the_posts_export_upgrades_and_serves_as_the_page_shows(tmp_path, sar, capfd, monkeypatch):
    # Made in this process (its TensorFlow is TF1's too): what it prints, and no warning.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["make_2018_export.py"])  # Run with no argument.
    capfd.readouterr()
    with as_before(), sar.tf.Graph().as_default():  # As in a process of its own.
        runpy.run_path(example("make_2018_export.py"), run_name="__main__")
    made = capfd.readouterr()
    assert script_stderr(made.err) == []
    assert_same_output(
        transcript("An export to try it on", "python3 examples/make_2018_export.py"), made.out
    )
    (through_iterator,) = arrays(made.out)
    old = snapshot(str(tmp_path / "old_export"))
    # saved_model_cli cannot run it: the page's commands, its error among the lines.
    (block,) = [b for b in code_blocks("An export to try it on", "text") if "saved_model_cli" in b]
    make, serve, error = block.splitlines()
    subprocess.run([sys.executable, *shlex.split(make[2:])[1:]], cwd=str(tmp_path), check=True)

    command = "python3 examples/upgrade_export.py old_export new_export"
    upgraded = forked_result(start_upgrade(tmp_path, *shlex.split(command)[2:]))
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert script_stderr(upgraded.stderr) == []  # No warning, no log but TF's start-up notes.
    assert_same_output(transcript("Running it", command), upgraded.stdout)
    assert "any batch size" in upgraded.stdout
    meta = assert_cut_free(tmp_path / "old_export", tmp_path / "new_export")
    # One input, all a TF Serving request sends; logits of any batch size.
    assert list(meta.signature_def["serving_default"].inputs) == ["features_data_ph"]
    logits = meta.signature_def["serving_default"].outputs["logits"].tensor_shape
    assert [dim.size for dim in logits.dim] == [-1, 5]  # Not the old (32, 5).
    # The old export untouched; nothing else written (no staging folder left).
    assert snapshot(str(tmp_path / "old_export")) == old
    assert {"old_export", "new_export"} <= set(os.listdir(str(tmp_path)))
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith(".")]

    # saved_model_cli, as printed: the rows make_2018_export.py printed.
    serving = "Serving the new export"
    block = code_blocks(serving, "text")[0]
    commands = re.findall(r"^\$ (.*)$", block, re.MULTILINE)
    subprocess.run([sys.executable, *shlex.split(commands[0])[1:]], cwd=str(tmp_path), check=True)

    # One after another: ONNX, converted as printed (`python3 -m tf2onnx.convert ...`);
    # then the kept iterator, the TF2 signature and Keras 3 layer, and ONNX Runtime.
    convert = code_blocks(serving, "sh")[0].splitlines()[-1]
    converted = run_python(tmp_path, *shlex.split(convert)[1:])
    assert converted.returncode == 0, converted.stderr[-3000:]
    results = run_in_turn([(tmp_path, example(name)) for name in PROGRAMS[2:]])
    assert [status for _, status in results] == ["0"] * 3, results
    failed = saved_model_cli(*shlex.split(serve)[2:], cwd=tmp_path)
    assert failed.returncode == 1 and error in failed.stderr.splitlines(), failed.stderr[-3000:]
    served = saved_model_cli(*shlex.split(commands[1])[1:], cwd=tmp_path)
    assert served.returncode == 0, served.stderr[-3000:]
    assert_same_output(block.split(commands[1] + "\n", 1)[1], served.stdout)
    np.testing.assert_allclose(arrays(served.stdout)[0], through_iterator, atol=1e-6)
    (kept, _), (used, _), (onnx, _) = results
    assert_same_output(
        transcript("Keeping the iterator", "python3 examples/keep_iterator.py"), kept
    )
    assert kept.splitlines()[0] == "initializers: ['dataset_init']"
    for printed in arrays(kept) + arrays(used) + arrays(onnx):
        np.testing.assert_allclose(printed, through_iterator, atol=1e-6)
    assert len(arrays(used)) == 2

    # Any batch size, against the old export's own logits through its
    # iterator: all 64 sequences in batches of 32 (all it takes).
    tf = sar.tf
    np.random.seed(0)
    features = np.random.randn(64, 10, 30)
    labels = np.eye(5)[np.random.randint(0, 5, (64,))]
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        tf.saved_model.loader.load(sess, ["serve"], str(tmp_path / "old_export"))
        feeds = {"features_data_ph:0": features, "labels_data_ph:0": labels, "batch_size_ph:0": 32}
        sess.run(graph.get_operation_by_name("dataset_init"), feeds)
        expected = np.concatenate([sess.run("dense/BiasAdd:0") for _ in range(2)])
    with loaded(tf, tmp_path / "new_export", "logits") as run:
        for size in (1, 5, 32, 64):
            np.testing.assert_allclose(run(features[:size]), expected[:size], atol=1e-6)


# The consumers of every kind's new export, in one Keras 3 program: the TF2
# signature called with the new inputs alone, a TFSMLayer (of a signature of
# one input), saved_model_cli's run (the function its command calls), and
# tf2onnx into ONNX Runtime; each fed the old iterator's batch, then its first
# row, then its first 7 rows (an integer scalar, the batch size, made to agree).
CONSUMERS = """
import json, os, sys
import keras, numpy as np, onnxruntime, tensorflow as tf, tf2onnx.convert
from tensorflow.python.tools import saved_model_cli


def first(inputs, size):
    return {
        k: v[:size] if np.ndim(v) else np.array(size, v.dtype) if v.dtype.kind in "iu" else v
        for k, v in inputs.items()
    }


largest = {}
for folder in sys.argv[1:]:
    os.chdir(folder)
    inputs, expected = dict(np.load("inputs.npz")), dict(np.load("expected.npz"))
    rows = next(len(v) for v in inputs.values() if np.ndim(v))
    signature = tf.saved_model.load("new").signatures["serving_default"]
    sys.argv = ["tf2onnx.convert", "--saved-model", "new", "--output", "new.onnx"]
    tf2onnx.convert.main()
    session = onnxruntime.InferenceSession("new.onnx")
    assert sorted(i.name for i in session.get_inputs()) == sorted(inputs), folder
    names = [o.name for o in session.get_outputs()]
    for size in (rows, 1, 7):
        x = first(inputs, size)
        ways = {"signature": signature(**{k: tf.constant(v) for k, v in x.items()})}
        if len(x) == 1:
            layer = keras.layers.TFSMLayer("new", call_endpoint="serving_default")
            ways["TFSMLayer"] = layer(*x.values())
        saved_model_cli.run_saved_model_with_feed_dict("new", "serve", "serving_default", x, "cli", True)
        ways["saved_model_cli"] = {k[:-4]: np.load("cli/" + k) for k in os.listdir("cli")}
        ways["ONNX Runtime"] = dict(zip(names, session.run(None, x)))
        for way, outputs in ways.items():
            assert sorted(outputs) == sorted(expected), (folder, way)
            for key, want in expected.items():
                if np.ndim(want) and len(want) == rows:
                    want = want[:size]
                elif size != rows:
                    continue  # A metric of the whole batch: at the old iterator's batch only.
                got = np.asarray(outputs[key], np.float64)
                name = "{} {} {} rows".format(os.path.basename(folder), way, size)
                largest[name] = max(largest.get(name, 0.0), float(np.max(np.abs(got - want))))
print(json.dumps(largest))
"""


# The kinds whose upgrade a page shows, by the heading it is under.
PAGES = {
    "batchnorm": "Exports of every style",
    "batch_size": "Exports of every style",
    "queue": "Queue runners",
    "estimator": "An Estimator's model_dir",
    "frozen": "Frozen graphs",
}


@pytest.mark.heavy(30)
def test_every_kind_of_iterator_export_upgrades_and_serves_everywhere(
    tmp_path, sar, capsys, monkeypatch
):
    import old_exports  # Builds with this process's TensorFlow, as TF 1.x code.

    # Made as the pages make them, named from here: the record files' paths,
    # which the queue's graph holds, as long as on the page.
    monkeypatch.chdir(tmp_path)

    folders = []
    # The exports, and what TF1 training left: checkpoints and a frozen graph.
    kinds = [(kind, "export") for kind in old_exports.KINDS if kind != "post"]
    kinds += [(kind, old) for kind, (_, old) in old_exports.LEFT.items()]
    for kind, old_path in kinds:
        folder = tmp_path / kind
        old_exports.main(kind, kind)
        # What is read of it: a folder, or the files of a checkpoint's prefix.
        read = folder / (old_path.split("/")[0] if kind == "saver" else old_path)
        old = snapshot(str(read))
        capsys.readouterr()
        assert upgrade_in_process(tmp_path, f"{kind}/{old_path}", f"{kind}/new") == 0
        printed = capsys.readouterr().out
        lines = printed.splitlines()
        for line in FOUND.get(kind, []):
            assert line in lines, (kind, line, lines)
        if kind in PAGES:  # What the page shows it did.
            command = f"python3 examples/upgrade_export.py {kind}/{old_path} {kind}/new"
            assert_same_output(transcript(PAGES[kind], command), printed)
        # Batches of any size, as the old one or taken from the input, checked at 1 and 7 rows.
        assert re.match(r"batch size: (any, as the old|.*: any batch size)", lines[-2]), lines
        assert re.search(r"\(checked with (\d+, )?7 and 1\)$", lines[-2]), lines
        assert snapshot(str(read)) == old
        meta = assert_cut_free(folder / "new", folder / "new")
        # Every batched input and output declares a batch of any size.
        signature = meta.signature_def["serving_default"]
        inputs = dict(np.load(str(folder / "inputs.npz")))
        assert sorted(signature.inputs) == sorted(inputs), kind
        assert sorted(signature.outputs) == sorted(np.load(str(folder / "expected.npz"))), kind
        rows = next(len(v) for v in inputs.values() if np.ndim(v))
        for key, value in inputs.items():
            dims = [d.size for d in signature.inputs[key].tensor_shape.dim]
            assert dims[:1] == ([-1] if np.ndim(value) else []), (kind, key, dims)
        for key, value in np.load(str(folder / "expected.npz")).items():
            dims = [d.size for d in signature.outputs[key].tensor_shape.dim]
            batched = np.ndim(value) and len(value) == rows
            assert dims[:1] == ([-1] if batched else []), (kind, key, dims)
        folders.append(str(folder))
    # Nothing of the training data the one-shot iterator held: its export is
    # smaller than the 500 x 64 floats alone.
    assert os.path.getsize(str(tmp_path / "shuffled" / "new" / "saved_model.pb")) < 500 * 64 * 4
    # Every kind's export, converted and run four ways: 20 to 30 s here.
    consumed = run_python(tmp_path, "-c", CONSUMERS, *folders, bound=120)
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    # Resource variables only: TF2 loads them without a warning per variable.
    assert "reference variable" not in consumed.stderr
    largest = json.loads(consumed.stdout.splitlines()[-1])
    assert len(largest) >= 3 * 3 * len(folders), largest
    assert max(largest.values()) <= 1e-6, largest


def write_export(tf, path, tags, lengths=None, batch=4):
    """A small export: a GRU over an iterator's batches, its sequence lengths a constant."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(1)
        data_ph = tf.placeholder(tf.float32, [None, 10, 3], "data_ph")
        dataset = tf.data.Dataset.from_tensor_slices(data_ph).batch(batch)
        iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
        iterator.make_initializer(dataset, name="dataset_init")
        outputs, _ = tf.nn.dynamic_rnn(
            tf.nn.rnn_cell.GRUCell(4), iterator.get_next(), lengths, dtype=tf.float32
        )
        sess.run(tf.global_variables_initializer())
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            {"data_ph": data_ph}, {"out": tf.reduce_mean(outputs, axis=1)}
        )
        builder = tf.saved_model.builder.SavedModelBuilder(str(path))
        builder.add_meta_graph_and_variables(sess, tags, {"serving_default": signature})
        builder.save()


def test_a_batch_size_it_cannot_take_from_the_input_is_kept_and_said(tmp_path, sar, capsys):
    write_export(sar.tf, tmp_path / "old", ["serve"], lengths=[10, 10, 9, 10])
    assert upgrade_in_process(tmp_path, "old", "new") == 0
    out = capsys.readouterr().out
    (said,) = [line for line in out.splitlines() if line.startswith("batch size: ")]
    # Where: the constant of 4 lengths.
    assert said == (
        "batch size: 4 only, as the old export: its graph holds 4 in rnn/Cast/x, rnn/Shape_1, "
        "where this program cannot safely take it from the input"
    ), said
    assert "check: old and new fed the same sample batch of 4: largest difference 0" in out
    # The new export takes batches of 4, as the old one, says so, and takes nothing else.
    (inputs,) = serving(tmp_path / "new").signature_def["serving_default"].inputs.values()
    assert [dim.size for dim in inputs.tensor_shape.dim] == [4, 10, 3]
    x = np.random.RandomState(0).randn(4, 10, 3)
    with loaded(sar.tf, tmp_path / "new", "out") as run:
        assert run(x).shape == (4, 4)
        with pytest.raises(ValueError, match="Cannot feed value of shape"):
            run(x[:3])


def edited(path, edit):
    """The SavedModel at path, its serve graph's nodes changed by edit(nodes by name)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(str(path), "saved_model.pb")
    with open(pb, "rb") as file:
        saved = saved_model_pb2.SavedModel.FromString(file.read())
    edit({node.name: node for node in saved.meta_graphs[0].graph_def.node})
    with open(pb, "wb") as file:
        file.write(saved.SerializeToString())


@pytest.mark.heavy(12)
def test_what_training_left_upgrades_as_asked_or_says_why_not(tmp_path, sar, capsys):
    import old_exports

    tf = sar.tf
    for kind in ("queue", "saver", "frozen"):
        (tmp_path / kind).mkdir()
        old_exports.main(kind, str(tmp_path / kind))
    # The moving averages for weights, as --moving-averages asks: the logits
    # those give, at the queue's 16 rows, and at 1 and 7.
    assert upgrade_in_process(tmp_path, "--moving-averages", "queue/train", "averaged") == 0
    assert (
        "  weights: the moving averages of 6, as --moving-averages asks" in capsys.readouterr().out
    )
    images = np.load(str(tmp_path / "queue" / "inputs.npz"))["input"]
    want = np.load(str(tmp_path / "queue" / "expected_averages.npz"))["logits"]
    raw = np.load(str(tmp_path / "queue" / "expected.npz"))["logits"]
    assert np.abs(want - raw).max() > 1e-3  # Other weights than those it trained.
    with loaded(tf, tmp_path / "averaged", "logits") as run:
        for size in (16, 1, 7):
            np.testing.assert_allclose(run(images[:size]), want[:size], atol=1e-6)
    # A frozen graph written as text; an output named by --output, without its :0.
    command = ["--output", "logits=dense/BiasAdd", "frozen/frozen.pbtxt", "from_text"]
    assert upgrade_in_process(tmp_path, *command) == 0
    assert "outputs: " not in capsys.readouterr().out  # Nothing chosen.
    x = np.load(str(tmp_path / "frozen" / "inputs.npz"))["input"]
    want = np.load(str(tmp_path / "frozen" / "expected.npz"))["dense"]
    with loaded(tf, tmp_path / "from_text", "logits") as run:
        for size in (32, 1, 7):
            np.testing.assert_allclose(run(x[:size]), want[:size], atol=1e-6)

    # A checkpoint of a model fed by placeholders, no pipeline: an export of them.
    x = np.random.RandomState(0).randn(5, 3).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        placeholders = tf.placeholder(tf.float32, [None, 3], "x"), tf.placeholder(tf.int64, [None])
        logits = tf.layers.dense(placeholders[0], 2, name="logits")
        loss = tf.losses.sparse_softmax_cross_entropy(placeholders[1], logits)
        tf.train.AdamOptimizer(0.1).minimize(loss)
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, str(tmp_path / "fed" / "model.ckpt"), global_step=1)
        want = sess.run(logits, {placeholders[0]: x})
    assert upgrade_in_process(tmp_path, "fed", "fed_new") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "fed reads its input from placeholders, with no pipeline:", out
    assert out[-1] == "wrote fed_new, 12 KB (fed: 34 KB): its serving_default takes x", out
    with loaded(tf, tmp_path / "fed_new", "logits") as run:
        np.testing.assert_allclose(run(x), want, atol=1e-6)

    # A checkpoint whose .meta is another run's, or another model's.
    (tmp_path / "mixed").mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(
            str(tmp_path / "queue/train/model.ckpt-3") + suffix,
            str(tmp_path / "mixed" / "model.ckpt-3") + suffix,
        )
    shutil.copy(
        str(tmp_path / "saver/train/model.ckpt-2.meta"), str(tmp_path / "mixed/model.ckpt-3.meta")
    )
    for shape in ([2], [3]):
        with tf.Graph().as_default(), tf.Session() as sess:
            tf.get_variable("w", shape)
            sess.run(tf.global_variables_initializer())
            saver = tf.train.Saver()
            if shape == [2]:
                saver.save(sess, str(tmp_path / "shapes"), write_meta_graph=False)
            else:
                saver.export_meta_graph(str(tmp_path / "shapes.meta"))
    # A model whose loss compares its output with nothing: no labels to tell it by.
    with tf.Graph().as_default(), tf.Session() as sess:
        y = tf.layers.dense(tf.placeholder(tf.float32, [None, 3], "x"), 2)
        tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_mean(y * y))
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, str(tmp_path / "unlabelled"))
    # A frozen graph with an op this TensorFlow does not have; an export's file renamed.
    graph = tf.GraphDef.FromString((tmp_path / "frozen/frozen.pb").read_bytes())
    (node,) = [n for n in graph.node if n.name == "dense/BiasAdd"]
    node.op = "NoSuchOp"
    (tmp_path / "unknown.pb").write_bytes(graph.SerializeToString())
    write_export(tf, tmp_path / "export", ["serve"])
    shutil.copy(str(tmp_path / "export/saved_model.pb"), str(tmp_path / "renamed.pb"))
    before = snapshot(str(tmp_path))
    refusals = {
        ("mixed/model.ckpt-3", "new"): (
            r"mixed/model.ckpt-3 does not match its \.meta: its graph restores \S+ and \d+ more, "
            r"which the checkpoint does not hold"
        ),
        ("shapes", "new"): (
            r"shapes does not match its \.meta: w is \(3,\) in its graph and \(2,\) in the checkpoint"
        ),
        ("--output", "y=dense/BiasAd", "saver/train/model.ckpt-2", "new"): (
            r"--output y=dense/BiasAd: the graph has no tensor dense/BiasAd \(close: dense/BiasAdd, .+\)"
        ),
        ("--moving-averages", "saver/train", "new"): (
            r"--moving-averages: saver/train holds no moving average of the model's variables "
            r"\(VARIABLE/ExponentialMovingAverage\)"
        ),
        ("unlabelled", "new"): (
            r"unlabelled has no signature, and its graph does not tell its model's outputs "
            r"\(.+\): name them with --output KEY=TENSOR"
        ),
        ("--output", "y=dense/BiasAdd:0", "unknown.pb", "new"): (
            r"unknown.pb does not load in TensorFlow [\d.]+: its model uses the op NoSuchOp "
            r"\(node dense/BiasAdd\), which this TensorFlow does not have"
        ),
        ("renamed.pb", "new"): (
            r"renamed.pb is a SavedModel's saved_model.pb: give the folder that holds it"
        ),
    }
    for args, message in refusals.items():
        line = upgrade_in_process(tmp_path, *args)
        assert re.fullmatch("upgrade_export.py: " + message, line), (args, line)
    assert snapshot(str(tmp_path)) == before


def test_what_tensorflow_2_refuses_is_left_out_or_said_in_one_line(tmp_path, sar, capsys):
    # Shapes recorded by another TensorFlow, that this one infers otherwise, and
    # an op this one does not have, where the cut does not need it: upgraded.
    write_export(sar.tf, tmp_path / "old", ["serve"], batch=4)

    def stale(nodes):
        matmuls = [node for name, node in nodes.items() if node.op == "MatMul"]
        matmuls[0].attr["_output_shapes"].list.shape.add().dim.add().size = 123
        nodes["dataset_init"].op = "NoSuchOp"  # The initializer: the cut never runs it.

    edited(tmp_path / "old", stale)
    assert upgrade_in_process(tmp_path, "old", "new") == 0
    assert "largest difference 0\n" in capsys.readouterr().out
    # The same op in the model: one line that names it.
    edited(tmp_path / "old", lambda nodes: setattr(nodes["Mean"], "op", "NoSuchOp"))
    refused = upgrade_in_process(tmp_path, "old", "again")
    assert refused.startswith("upgrade_export.py: old does not load in TensorFlow "), refused
    assert "NoSuchOp" in refused and "\n" not in refused, refused
    assert not (tmp_path / "again").exists()


SEQ2SEQ = "Sentences in, words out: the pipeline carried over"


@pytest.mark.heavy(19)
def test_a_seq2seq_export_serves_sentences_from_any_folder(tmp_path, sar, capfd, monkeypatch):
    tf = sar.tf
    # Made in this process (TF1 code, as this process's TensorFlow is), as the page shows.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["make_seq2seq_export.py"])  # Run with no argument.
    capfd.readouterr()
    with as_before(), tf.Graph().as_default():  # As in a process of its own.
        runpy.run_path(example("make_seq2seq_export.py"), run_name="__main__")
    made = capfd.readouterr()
    assert script_stderr(made.err) == []
    assert_same_output(transcript(SEQ2SEQ, "python3 examples/make_seq2seq_export.py"), made.out)
    old = snapshot(str(tmp_path / "seq2seq_export"))
    # Upgraded as a user does, in a process of its own (with TF2's control flow).
    command = "python3 examples/upgrade_export.py seq2seq_export seq2seq_new"
    upgraded = forked_result(start_upgrade(tmp_path, *command.split()[2:]))
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert_same_output(transcript(SEQ2SEQ, command), upgraded.stdout)
    # The option that cuts at the iterator anyway: token ids and lengths in.
    assert upgrade_in_process(tmp_path, "--at-iterator", "seq2seq_export", "seq2seq_ids") == 0
    said = capfd.readouterr().out
    assert "  pipeline: not carried over (as --at-iterator asks): " in said, said
    for new in ("seq2seq_new", "seq2seq_ids"):
        meta = assert_cut_free(tmp_path / "seq2seq_export", tmp_path / new)
        assert (
            sorted(os.listdir(str(tmp_path / new / "assets")))
            == ["source.txt", "target.txt"][new == "seq2seq_ids" :]
        )
    assert sorted(meta.signature_def["serving_default"].inputs) == ["input_0", "input_1"]
    assert snapshot(str(tmp_path / "seq2seq_export")) == old

    # What the old export's own iterator gives for a batch of sentences, and for one.
    batches = [["bird cat dog", "egg", "kite lamp apple hat", "jam"], ["lamp goat"]]
    expected = []
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], str(tmp_path / "seq2seq_export"))
        words = meta.signature_def["serving_default"].outputs["translations"].name
        (init,) = [op for op in graph.get_operations() if op.type == "MakeIterator"]
        for sentences in batches:
            sess.run(init, {"src:0": sentences, "batch_size:0": len(sentences)})
            expected.append(sess.run([words, "IteratorGetNext:0", "IteratorGetNext:1"]))
    # The new exports, loaded in a folder without seq2seq_vocab/: their own assets.
    elsewhere = tmp_path / "served_here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with loaded(tf, tmp_path / "seq2seq_new", "translations") as run:
        for sentences, (words, _, _) in zip(batches, expected):
            assert np.array_equal(run(np.array(sentences, object)), words)
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], str(tmp_path / "seq2seq_ids"))
        signature = meta.signature_def["serving_default"]
        fetch = signature.outputs["translations"].name
        for words, ids, lengths in expected:
            feed = {
                signature.inputs["input_0"].name: ids,
                signature.inputs["input_1"].name: lengths,
            }
            assert np.array_equal(sess.run(fetch, feed), words)

    # saved_model_cli from there, as the page shows, and TF2 code.
    (block,) = [b for b in code_blocks(SEQ2SEQ, "text") if "saved_model_cli" in b]
    mkdir, serve, *shown, back = block.splitlines()
    assert (mkdir, back) == ("$ mkdir -p served_here && cd served_here", "$ cd ..")
    (elsewhere / "tf2.py").write_text(
        "import tensorflow as tf\n"
        "serve = tf.saved_model.load('../seq2seq_new').signatures['serving_default']\n"
        "print(serve(src=tf.constant(['lamp goat']))['translations'].numpy().tolist())\n"
    )
    ((tf2, tf2_status),) = run_in_turn([(elsewhere, "tf2.py")])
    served = saved_model_cli(*shlex.split(serve)[2:], cwd=elsewhere)
    assert served.returncode == 0 and served.stdout.splitlines() == shown, served
    assert tf2_status == "0" and tf2.strip() == str(expected[1][0].tolist()), tf2

    # An export whose vocabulary file is gone: one line, nothing written.
    shutil.copytree(str(tmp_path / "seq2seq_export"), str(tmp_path / "missing"))
    os.remove(str(tmp_path / "missing" / "assets" / "source.txt"))
    refused = upgrade_in_process(tmp_path, "missing", "missing_new")
    assert refused == (
        "upgrade_export.py: missing has no assets/source.txt, the file its tables are filled from"
    )
    assert not (tmp_path / "missing_new").exists()


def test_token_ids_through_a_reference_embedding_upgrade(tmp_path, sar, capsys):
    # TF1's default variables, read by embedding_lookup, which colocates
    # with its variable: rebuilt as a resource variable, it must not dangle.
    tf = sar.tf
    with tf.Graph().as_default(), tf.Session() as sess:
        ids_ph = tf.placeholder(tf.int32, [None, 7], "ids_ph")
        dataset = tf.data.Dataset.from_tensor_slices(ids_ph).shuffle(10).batch(4)
        ids = dataset.make_initializable_iterator().get_next()
        with tf.variable_scope("tokens", use_resource=False):
            embedding = tf.get_variable("embedding", [100, 16])
        logits = tf.layers.dense(tf.reduce_mean(tf.nn.embedding_lookup(embedding, ids), 1), 3)
        sess.run(tf.global_variables_initializer())
        tf.saved_model.simple_save(sess, str(tmp_path / "old"), {"ids": ids_ph}, {"y": logits})
    assert upgrade_in_process(tmp_path, "old", "new") == 0
    out = capsys.readouterr().out
    assert "  variables: 3 of 3, the model's; 3 reference ones made resource" in out
    assert "largest difference 0\n" in out
    assert_cut_free(tmp_path / "old", tmp_path / "new")


# Batches of 3 only, the size it tries first, which runs; of 4, the GRU's units too.
@pytest.mark.parametrize("batch", [3, 4])
def test_a_batch_size_baked_in_is_taken_from_the_input(tmp_path, sar, capsys, batch):
    write_export(sar.tf, tmp_path / "old", ["serve"], lengths=[10] * batch, batch=batch)
    assert upgrade_in_process(tmp_path, "old", "new") == 0
    out = capsys.readouterr().out
    assert f"batch size: the old export runs batches of {batch} only" in out
    checked = {3: "6, 7 and 1", 4: "7 and 1"}[batch]  # The sample's own size, then these.
    assert out.splitlines()[-2].endswith(f"any batch size (checked with {checked})")
    x = np.random.RandomState(0).randn(7, 10, 3)
    with loaded(sar.tf, tmp_path / "new", "out") as run:
        rows = run(x[:batch])
        for size in (1, 2, 7):
            np.testing.assert_allclose(run(x[:size])[:batch], rows[:size], atol=1e-6)


def test_refusals_are_one_line_and_write_nothing(tmp_path, sar, full_run, monkeypatch):
    tf = sar.tf
    write_export(tf, tmp_path / "old", ["serve"])
    write_export(tf, tmp_path / "trained", ["train"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "saved_model.pb").write_text("not a protocol buffer")
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "taken").mkdir()
    (tmp_path / "a_file").write_text("")
    simple = str(full_run[0] / "simple")
    before = snapshot(str(tmp_path)), snapshot(simple)
    refusals = {
        ("old",): USAGE,
        ("old", "taken"): "taken already exists: give the name of a folder to create",
        ("old", "nowhere/new"): f"no folder {tmp_path / 'nowhere'} to write nowhere/new in",
        ("old", "old/new"): "old/new is inside old, which this program never writes to",
        ("old", "old/..new"): "old/..new is inside old, which this program never writes to",
        ("old", ""): USAGE,
        ("--shuffle", "old", "new"): f"no option --shuffle: {USAGE}",
        ("missing", "new"): "missing: no such file or folder",
        ("missing", "nowhere/new"): "missing: no such file or folder",  # OLD first.
        ("a_file", "new"): (
            "a_file is not a GraphDef (neither binary nor text), a SavedModel or a checkpoint"
        ),
        ("blank", "new"): "blank is not a SavedModel: its saved_model.pb holds no MetaGraph",
        ("empty", "new"): (
            "empty holds neither a SavedModel (no saved_model.pb) nor checkpoints (no checkpoint file)"
        ),
        ("notes", "new"): "notes is not a SavedModel: its saved_model.pb does not parse",
        ("trained", "new"): "trained has no MetaGraph tagged serve (its tags: train)",
        (simple, "new"): f"{simple}: its signature's outputs do not go through a tf.data "
        "iterator once its inputs are fed, so it serves as it is: there is nothing to upgrade",
    }
    for args, message in refusals.items():
        assert upgrade_in_process(tmp_path, *args) == "upgrade_export.py: " + message
    assert (snapshot(str(tmp_path)), snapshot(simple)) == before

    # A new export that would compute other outputs is not written: here the
    # new export's outputs are made 1e-5 off as they are read back.
    with as_before():
        program = runpy.run_path(UPGRADE, run_name="upgrade_export_program")
    check = sys.modules["upgrade_export.check"]  # Its part that runs exports.
    real = check.run_export

    def off(path, feeds, extra=()):
        outputs = real(path, feeds, extra)
        return {k: v + 1e-5 for k, v in outputs.items()} if ".upgrade_export-" in path else outputs

    monkeypatch.setattr(check, "run_export", off)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(program["Refusal"], match="^the new export would compute other outputs"):
        program["main"](["old", "new"])
    assert snapshot(str(tmp_path)) == before[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_it_says_so_in_one_line_and_leaves_no_half_export(tmp_path, sar, signum):
    import old_exports

    old_exports.main("oneshot", str(tmp_path))
    process = start_upgrade(tmp_path, "export", "new")
    # Whatever the moment after its first line, the same promises hold: the
    # one line and nothing written, or a run that ended complete.
    assert read_until(process, "export reads its input").startswith("export reads its input")
    process.send_signal(signum)
    stdout, stderr = finish(process)
    written = (tmp_path / "new").is_dir()
    if written:
        assert process.returncode == 0 and script_stderr(stderr) == []
        assert stdout.splitlines()[-1].startswith("wrote new, ")
        assert_cut_free(tmp_path / "export", tmp_path / "new")
    else:
        assert process.returncode == 1
        line = "upgrade_export.py: interrupted before the end: nothing written"
        assert script_stderr(stderr) == [line]
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ["export", "inputs.npz", "expected.npz"] + (["new"] if written else [])
    )
