"""Save and restore a TF1-style model that reads its input through a tf.data Iterator.

The graph feeds three placeholders (batch size, features, labels) into a
`tf.data.Dataset`, reads it through a reinitializable Iterator whose initializer
is named `dataset_init`, and classifies each sequence with a bidirectional GRU.
The script trains the model briefly, exports it with
`tf.saved_model.simple_save`, loads the export into a fresh graph, finds the
tensors through the export's signature and the initializer by its name, and
checks that the restored model computes exactly the logits the trained one did.

The lesson: after loading, run the *restored* iterator's initializer. An iterator
built anew is a different iterator; the restored logits still read from the
restored one, which stays uninitialized, and TensorFlow fails with
"FailedPreconditionError: GetNext() failed because the iterator has not been
initialized".

The export also serves without the iterator: its input `features` can be fed
directly, as `saved_model_cli run` and TensorFlow Serving do.

Runs on TensorFlow 2.12 to 2.21 through `tf.compat.v1` (with the `tf-keras`
package from 2.16 on), and unchanged on TensorFlow 1.8.

Usage:

    python3 save_and_restore.py                 # train, export, restore, compare
    python3 save_and_restore.py --restore-only  # restore and compare in a new process
    python3 save_and_restore.py --show-pitfall  # also show the FailedPreconditionError

Writes the SavedModel to ./simple (saved_model.pb, variables/, and the final
inference in assets.extra/expected_logits.npy). Exits 0 when the restored
inferences match, 1 when they do not, 2 on bad input.
"""

import argparse
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

# TensorFlow 2.16 and later ship Keras 3, which dropped the TF1 layers this graph
# is made of (tf.nn.rnn_cell.GRUCell, tf.layers.dense). They live on in the
# `tf-keras` package, which TensorFlow uses only when TF_USE_LEGACY_KERAS=1 is set
# before TensorFlow is imported. Set it only where tf-keras is installed, and
# clear it where not: TF 2.15 and older bundle Keras 2, and break if the variable
# points them at a missing tf-keras.
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
else:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)

# TensorFlow's C++ side logs informational notes (about MLIR passes, CPU
# instructions) on stderr; level 1 hides those and keeps warnings and errors.
# It must be set before the import. A few notes print during the import all the
# same, before TensorFlow reads the setting.
if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"

try:
    import tensorflow.compat.v1 as tf
except ImportError:  # TensorFlow before 1.13 has no compat.v1: its API is the v1 API.
    import tensorflow as tf

TF_VERSION = tuple(int(part) for part in tf.__version__.split(".")[:2])
if TF_VERSION >= (2, 16) and importlib.util.find_spec("tf_keras") is None:
    sys.exit(
        f"error: TensorFlow {tf.__version__} keeps the TF1 RNN cells and layers in the "
        f"tf-keras package: pip install tf-keras~={TF_VERSION[0]}.{TF_VERSION[1]}.0"
    )

# Every TF1 API used here is deprecated in TF 2 and would print ~50 lines of
# warnings around a dozen lines of results. Errors are still shown.
tf.logging.set_verbosity(tf.logging.ERROR)
warnings.filterwarnings(
    "ignore", r"`tf\.(nn\.rnn_cell\.GRUCell|layers\.dense)` is deprecated", UserWarning
)

# Build TF1 graphs: v1 control flow and variables, as TF 1.x had them. The export
# is then the graph the original tutorial made, loadable by TF1-era code.
if hasattr(tf, "disable_v2_behavior"):
    tf.disable_v2_behavior()

# Names shared by the save side and the restore side. Code written against the
# original tutorial looks these up, so they must not change.
EXPORT_DIR = "simple"
BATCH_SIZE_KEY = "batch_size_ph"  # Placeholder names double as signature keys.
FEATURES_KEY = "features_data_ph"
LABELS_KEY = "labels_data_ph"
DATASET_INIT = "dataset_init"  # The iterator's initializer op.
LOGITS_KEY = "logits"  # Signature output key; the tensor itself is dense/BiasAdd:0.
# The model's input: a batch from the iterator, unless a batch is fed here
# directly, as saved_model_cli and TF Serving do. Also a signature input key.
SERVING_FEATURES_KEY = "features"
# The final inference, saved next to the model to check a later restore against.
# assets.extra/ is where a SavedModel keeps files TensorFlow does not load.
EXPECTED_LOGITS = os.path.join("assets.extra", "expected_logits.npy")
# A new export is written beside the old one, in .simple.save_and_restore-<pid>-*,
# then swapped into place.
STAGING_TAG = ".save_and_restore-"
SERVE_TAG = tf.saved_model.tag_constants.SERVING
SIGNATURE_KEY = tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY

# The data and the model.
SEED = 0
NUM_SAMPLES = 64
SEQUENCE_LENGTH = 10
NUM_FEATURES = 30
NUM_CLASSES = 5
GRU_UNITS = 10
BATCH_SIZE = 32
EPOCHS = 2
LEARNING_RATE = 1e-2
# How close restored logits must be to the expected ones when they may come
# from another process or machine, or from batches of another size: the last
# bits of float32 sums can differ. Within one run, on the same batches, they
# must be identical.
TOLERANCE = 1e-6


def make_data(seed=SEED):
    """Makes the synthetic data set, the same for the same seed.

    Args:
        seed: seed of the NumPy random generator.

    Returns:
        features: float32 array of shape (NUM_SAMPLES, SEQUENCE_LENGTH, NUM_FEATURES).
        labels: int32 one-hot array of shape (NUM_SAMPLES, NUM_CLASSES).
    """
    rng = np.random.RandomState(seed)
    features = rng.randn(NUM_SAMPLES, SEQUENCE_LENGTH, NUM_FEATURES)
    labels = np.eye(NUM_CLASSES)[rng.randint(0, NUM_CLASSES, NUM_SAMPLES)]
    return features.astype(np.float32), labels.astype(np.int32)


def build_input_pipeline():
    """Builds placeholders -> Dataset -> reinitializable Iterator -> model input.

    Returns:
        inputs: the three placeholders, keyed by their names, and the model's
            input, keyed by SERVING_FEATURES_KEY.
        init_op: the iterator's initializer, named DATASET_INIT.
        features: the model's input: the next batch's features, or a batch fed
            directly in their place.
        labels: the labels of the next batch.
    """
    batch_size = tf.placeholder(tf.int64, [], name=BATCH_SIZE_KEY)
    features = tf.placeholder(tf.float32, [None, None, NUM_FEATURES], name=FEATURES_KEY)
    labels = tf.placeholder(tf.int32, [None, NUM_CLASSES], name=LABELS_KEY)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size)
    iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
    # A fixed name is what lets the restore side find this op in the loaded graph.
    init_op = iterator.make_initializer(dataset, name=DATASET_INIT)
    next_features, next_labels = iterator.get_next()
    # Without a feed this is the iterator's batch; fed, it bypasses the iterator,
    # so a server can run the export without knowing about iterators.
    model_input = tf.placeholder_with_default(
        next_features, [None, None, NUM_FEATURES], name=SERVING_FEATURES_KEY
    )
    inputs = {
        BATCH_SIZE_KEY: batch_size,
        FEATURES_KEY: features,
        LABELS_KEY: labels,
        SERVING_FEATURES_KEY: model_input,
    }
    return inputs, init_op, model_input, next_labels


def build_model(features):
    """Builds a bidirectional GRU, averaged over time, then a dense classifier.

    Args:
        features: float32 tensor of shape (batch, time, NUM_FEATURES).

    Returns:
        The logits, float32 of shape (batch, NUM_CLASSES), named dense/BiasAdd:0.
    """
    # Fix: one cell object for both directions would tie their weights together.
    cell_fw = tf.nn.rnn_cell.GRUCell(GRU_UNITS)
    cell_bw = tf.nn.rnn_cell.GRUCell(GRU_UNITS)
    # Fix: no sequence_length, so no batch size is baked into the graph.
    (out_fw, out_bw), _ = tf.nn.bidirectional_dynamic_rnn(
        cell_fw, cell_bw, features, dtype=tf.float32
    )
    mean = tf.reduce_mean(tf.concat((out_fw, out_bw), 2), axis=1)
    return tf.layers.dense(mean, NUM_CLASSES, activation=None)


def build_train_op(logits, labels):
    """Builds the loss and one Adam step on it.

    Args:
        logits: the model's output, before softmax.
        labels: one-hot labels of the same batch.

    Returns:
        The operation that runs one optimization step.
    """
    with tf.variable_scope("loss"):
        xent = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        loss = tf.reduce_mean(xent)
    with tf.variable_scope("optimizer"):
        return tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss)


def new_session(graph):
    """Opens a session on the CPU.

    The model is tiny, so a GPU would not make it faster, and on the CPU every
    run gives the same numbers (some GPU kernels do not promise that).

    Args:
        graph: the tf.Graph to run.

    Returns:
        A tf.Session.
    """
    config = tf.ConfigProto(device_count={"GPU": 0})
    return tf.Session(graph=graph, config=config)


def make_feed(inputs, features, labels, batch_size):
    """Maps the input placeholders to the values that initialize the iterator.

    Args:
        inputs: placeholders keyed by BATCH_SIZE_KEY, FEATURES_KEY, LABELS_KEY.
        features, labels: the data set, as from make_data().
        batch_size: number of samples per batch.

    Returns:
        A feed_dict for the iterator's initializer.
    """
    return {
        inputs[BATCH_SIZE_KEY]: batch_size,
        inputs[FEATURES_KEY]: features,
        inputs[LABELS_KEY]: labels,
    }


def iterate(sess, init_op, feed_dict, fetches):
    """Initializes the iterator, then yields `fetches` evaluated on each batch.

    Args:
        sess: the session.
        init_op: the iterator's initializer.
        feed_dict: the placeholder values the initializer reads.
        fetches: what to run on each batch.

    Yields:
        The value of `fetches` for each batch, until the data set runs out.
    """
    sess.run(init_op, feed_dict=feed_dict)
    while True:
        try:
            yield sess.run(fetches)
        except tf.errors.OutOfRangeError:
            return


def train(sess, init_op, feed_dict, train_op, logits):
    """Trains for EPOCHS epochs, then runs one more pass to infer.

    Args:
        sess: a session whose variables are initialized.
        init_op, feed_dict: the iterator's initializer and its feed.
        train_op: one optimization step.
        logits: the model's output.

    Returns:
        The logits of each batch of the final pass, a list of arrays.
    """
    for epoch in range(EPOCHS):
        batches = iterate(sess, init_op, feed_dict, [train_op, logits])
        for batch, (_, value) in enumerate(batches):
            print(f"Epoch {epoch}, batch {batch} | Sample value: {value[0]}")
    inferred = []
    for batch, value in enumerate(iterate(sess, init_op, feed_dict, logits)):
        print(f"Epoch {EPOCHS}, batch {batch} | Final inference | Sample value: {value[0]}")
        inferred.append(value)
    return inferred


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


def is_saved_model(path):
    """Tells whether path is a SavedModel directory (one this script may replace).

    Args:
        path: a filesystem path.

    Returns:
        True when path is a real directory with a saved_model.pb(txt) at its top.
    """
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    names = ("saved_model.pb", "saved_model.pbtxt")
    return any(os.path.isfile(os.path.join(path, name)) for name in names)


def staging_prefix(export_dir):
    """Returns the name prefix of the temporary directories beside export_dir."""
    return f".{os.path.basename(export_dir)}{STAGING_TAG}"


def process_alive(pid):
    """Tells whether process pid may still be running (always yes off POSIX)."""
    if os.name != "posix":  # There, os.kill(pid, 0) would stop the process.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # It exists but belongs to another user.
        return True
    return True


def remove_staging(staging, export_dir):
    """Removes a staging directory, first finishing a swap left half done in it.

    A run stopped between the two renames of swap_into_place() leaves no export
    at export_dir, the previous one in <staging>/old, and the new one, complete,
    in <staging>/new: the new one is moved into place.

    Args:
        staging: the staging directory.
        export_dir: path of the export.
    """
    if not os.path.lexists(export_dir) and os.path.isdir(os.path.join(staging, "old")):
        os.rename(os.path.join(staging, "new"), export_dir)
    shutil.rmtree(staging, ignore_errors=True)


def clean_up_killed_runs(export_dir):
    """Removes the staging directories that killed runs left beside export_dir.

    Those of runs still in progress are left alone.

    Args:
        export_dir: path of the export.
    """
    parent = os.path.dirname(os.path.abspath(export_dir))
    prefix = staging_prefix(export_dir)
    for name in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        pid = name[len(prefix) :].split("-")[0]
        if name.startswith(prefix) and pid.isdigit() and not process_alive(int(pid)):
            remove_staging(os.path.join(parent, name), export_dir)


def prepare_export(export_dir):
    """Checks that export_dir may be written and makes a staging directory beside it.

    Called before training, so that a refusal does not come after the wait.

    Args:
        export_dir: path of the export.

    Returns:
        The staging directory, in the same parent as export_dir.

    Raises:
        UsageError: export_dir is not ours to replace, or its folder is unusable.
    """
    parent = os.path.dirname(os.path.abspath(export_dir))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot export to {export_dir}: folder {parent} does not exist")
    clean_up_killed_runs(export_dir)
    if os.path.lexists(export_dir) and not is_saved_model(export_dir):
        raise UsageError(
            f"{export_dir} exists and is not a SavedModel, so it is left as it is: "
            "choose another --export-dir, or remove it yourself"
        )
    prefix = f"{staging_prefix(export_dir)}{os.getpid()}-"
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=parent)
    except OSError as error:
        raise UsageError(
            f"cannot export to {export_dir}: cannot write in {parent}: {error.strerror}"
        )


def swap_into_place(new, export_dir, staging):
    """Moves the export at new to export_dir, moving any previous one aside.

    Each rename is atomic, so export_dir holds a complete export, the old one or
    the new one, at every moment but the one between the two renames.

    Args:
        new: the complete new export, inside staging.
        export_dir: path of the export.
        staging: the staging directory, which receives the old export.
    """
    if os.path.lexists(export_dir):
        os.rename(export_dir, os.path.join(staging, "old"))
    os.rename(new, export_dir)


def export(sess, export_dir, staging, inputs, logits, inferred):
    """Writes the model with simple_save and puts it in place at export_dir.

    simple_save refuses a directory that exists, and deleting the previous
    export first would leave nothing in its place if the run died while saving.
    So the model is saved into the staging directory, then swapped into place.

    Args:
        sess: the session holding the trained variables.
        export_dir: path of the export.
        staging: the staging directory from prepare_export().
        inputs: the input tensors, keyed by their signature keys.
        logits: the output, saved under LOGITS_KEY.
        inferred: the final inference, saved as EXPECTED_LOGITS.
    """
    new = os.path.join(staging, "new")
    tf.saved_model.simple_save(sess, new, inputs, {LOGITS_KEY: logits})
    os.mkdir(os.path.join(new, os.path.dirname(EXPECTED_LOGITS)))
    np.save(os.path.join(new, EXPECTED_LOGITS), np.concatenate(inferred))
    swap_into_place(new, export_dir, staging)


def first_sentence(error):
    """The first sentence of an exception's message, for a one-line report."""
    return str(error).strip().splitlines()[0].split(". ")[0].rstrip(".")


def load_export(sess, export_dir):
    """Loads a SavedModel into the session's graph, or says in one line why not.

    Args:
        sess: a session on a new, empty graph.
        export_dir: the SavedModel directory.

    Returns:
        The loaded MetaGraphDef.

    Raises:
        UsageError: export_dir is missing, incomplete or unreadable.
    """
    if not os.path.isdir(export_dir):
        what = "is not a directory" if os.path.lexists(export_dir) else "does not exist"
        raise UsageError(f"{export_dir} {what}: run the full tutorial first to export a model")
    if not os.listdir(export_dir):
        raise UsageError(f"{export_dir} is empty: it holds no SavedModel")
    if not is_saved_model(export_dir):
        raise UsageError(f"{export_dir} has no saved_model.pb: it is not a SavedModel")
    if not os.path.isfile(os.path.join(export_dir, "variables", "variables.index")):
        raise UsageError(f"{export_dir} has no variables/variables.index: the export is incomplete")
    try:
        return tf.saved_model.loader.load(sess, [SERVE_TAG], export_dir)
    except (OSError, RuntimeError, ValueError, tf.errors.OpError) as error:
        raise UsageError(f"cannot load {export_dir}: {first_sentence(error)}")
    except KeyError as error:  # An op that this (older) TensorFlow does not have.
        raise UsageError(f"cannot load {export_dir}: TensorFlow {tf.__version__} has no op {error}")


def restore(sess, export_dir):
    """Loads the export into the session's graph and finds what the lesson needs.

    Args:
        sess: a session on a new, empty graph.
        export_dir: the SavedModel directory.

    Returns:
        inputs: the restored input tensors, keyed by their signature keys.
        init_op: the restored iterator's initializer.
        logits: the restored output tensor.

    Raises:
        UsageError: export_dir is not a SavedModel of this tutorial.
    """
    meta_graph = load_export(sess, export_dir)
    not_ours = "it is not an export of this tutorial"
    # simple_save recorded which tensors are the inputs and outputs: ask its
    # signature rather than hard-coding names such as dense/BiasAdd:0.
    if SIGNATURE_KEY not in meta_graph.signature_def:
        raise UsageError(f"{export_dir} has no {SIGNATURE_KEY} signature: {not_ours}")
    signature = meta_graph.signature_def[SIGNATURE_KEY]
    missing = [k for k in (BATCH_SIZE_KEY, FEATURES_KEY, LABELS_KEY) if k not in signature.inputs]
    if LOGITS_KEY not in signature.outputs:
        missing.append(LOGITS_KEY)
    if missing:
        raise UsageError(f"{export_dir}: its signature lacks {', '.join(missing)}: {not_ours}")
    graph = sess.graph
    inputs = {key: graph.get_tensor_by_name(info.name) for key, info in signature.inputs.items()}
    logits = graph.get_tensor_by_name(signature.outputs[LOGITS_KEY].name)
    # The restored logits are computed from the restored iterator's get_next(),
    # so it is the restored iterator that must be initialized. Initializing a
    # new one leaves it untouched and fetching the logits fails with
    # FailedPreconditionError. Its initializer is found by the name it was saved with.
    try:
        init_op = graph.get_operation_by_name(DATASET_INIT)
    except KeyError:
        raise UsageError(f"{export_dir} has no {DATASET_INIT} operation: {not_ours}")
    return inputs, init_op, logits


def infer_restored(export_dir, features, labels, batch_size):
    """Loads the export into a fresh graph and infers every batch through its iterator.

    Args:
        export_dir: the SavedModel directory.
        features, labels: the data set, as from make_data().
        batch_size: number of samples per batch.

    Returns:
        The logits of each batch, a list of arrays.
    """
    with tf.Graph().as_default() as graph, new_session(graph) as sess:
        inputs, init_op, logits = restore(sess, export_dir)
        feed_dict = make_feed(inputs, features, labels, batch_size)
        return list(iterate(sess, init_op, feed_dict, logits))


def show_pitfall(export_dir, features, labels, batch_size):
    """Makes the original post's mistake: initializes a new iterator, not the restored one.

    Args:
        export_dir: the SavedModel directory.
        features, labels: the data set, as from make_data().
        batch_size: number of samples per batch.

    Returns:
        The line of TensorFlow's FailedPreconditionError that says what failed,
        or None if fetching the logits did not fail.
    """
    with tf.Graph().as_default() as graph, new_session(graph) as sess:
        inputs, _, logits = restore(sess, export_dir)
        # The mistake: a new Dataset and iterator over the restored placeholders.
        dataset = tf.data.Dataset.from_tensor_slices((inputs[FEATURES_KEY], inputs[LABELS_KEY]))
        iterator = dataset.batch(inputs[BATCH_SIZE_KEY]).make_initializable_iterator()
        sess.run(iterator.initializer, feed_dict=make_feed(inputs, features, labels, batch_size))
        try:
            sess.run(logits)
        except tf.errors.FailedPreconditionError as error:
            lines = error.message.splitlines()
            return next((line for line in lines if "GetNext()" in line), lines[0])
    return None


def inferences_match(expected, restored, tolerance=0.0):
    """Tells whether restored logits are those expected, sample by sample.

    Args:
        expected: the expected logits, a list of per-batch arrays.
        restored: the restored model's logits, a list of per-batch arrays,
            possibly in batches of another size.
        tolerance: the largest difference allowed; 0 asks for identical values.

    Returns:
        True when both hold the same samples with values that agree; a missing
        or extra batch is a mismatch.
    """
    expected, restored = np.concatenate(expected), np.concatenate(restored)
    if expected.shape != restored.shape:
        return False
    return bool(np.all(np.abs(expected - restored) <= tolerance))


def load_expected(export_dir):
    """Reads the final inference that the full run saved next to the model.

    Args:
        export_dir: the SavedModel directory.

    Returns:
        The expected logits of all samples, as a list of one array.

    Raises:
        UsageError: the export has no such file.
    """
    path = os.path.join(export_dir, EXPECTED_LOGITS)
    if not os.path.isfile(path):
        raise UsageError(f"{path} is missing: --restore-only needs an export made by this script")
    try:
        return [np.load(path)]
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {first_sentence(error)}")


def train_and_export(export_dir, features, labels):
    """Builds the graph, trains the model, and exports it.

    Args:
        export_dir: path of the export.
        features, labels: the data set, as from make_data().

    Returns:
        The logits of each batch of the final inference, a list of arrays.

    Raises:
        UsageError: export_dir cannot be written (raised before training).
    """
    staging = prepare_export(export_dir)
    try:
        with tf.Graph().as_default() as graph:
            tf.set_random_seed(SEED)
            inputs, init_op, model_input, next_labels = build_input_pipeline()
            logits = build_model(model_input)
            train_op = build_train_op(logits, next_labels)
            with new_session(graph) as sess:
                sess.run(tf.global_variables_initializer())
                feed_dict = make_feed(inputs, features, labels, BATCH_SIZE)
                inferred = train(sess, init_op, feed_dict, train_op, logits)
                print(f"\nSaving to {export_dir}")
                export(sess, export_dir, staging, inputs, logits, inferred)
    finally:
        remove_staging(staging, export_dir)
    return inferred


def positive_int(text):
    """Parses a command-line value that must be a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a bad argument in one line, without the usage."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv=None):
    """Parses the command line.

    Args:
        argv: the arguments, sys.argv[1:] when None.

    Returns:
        The parsed arguments.
    """
    parser = OneLineErrorParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--export-dir", default=EXPORT_DIR, help="the SavedModel directory")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--restore-only",
        action="store_true",
        help="do not train: restore the export and check it gives the saved final inference",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=BATCH_SIZE,
        help="batch size of the restored model's iterator",
    )
    mode.add_argument(
        "--show-pitfall",
        action="store_true",
        help="after saving, initialize a new iterator instead of the restored one, and "
        "show the FailedPreconditionError that follows",
    )
    return parser.parse_args(argv)


def explain_pitfall(message):
    """Prints what show_pitfall() found, and why."""
    print("\nThe pitfall: restored the export, then initialized a new iterator")
    if message is None:
        print("Fetching the restored logits did not fail.")
        return
    print(f"FailedPreconditionError: {message}")
    print("Why: the new iterator is not the one the model reads from. The restored")
    print("logits are computed from the restored graph's own iterator, which nobody")
    print(f"initialized. The fix: initialize the restored one, found by its name, {DATASET_INIT}.")


def main(argv=None):
    """Trains, exports, restores and compares; or only restores and compares.

    Args:
        argv: the command-line arguments, sys.argv[1:] when None.

    Returns:
        The exit status: 0 when the inferences match (and, with --show-pitfall,
        the pitfall reproduced), 1 when they do not, 2 on bad input.
    """
    # Importing TensorFlow leaves a quarter of a million objects for the garbage
    # collector to track; freezing them spares each later collection from
    # scanning them all again (half a second of a run here, exit included).
    if hasattr(gc, "freeze"):  # Python 3.7 and later.
        gc.freeze()
    args = parse_args(argv)
    export_dir = os.path.normpath(args.export_dir)
    features, labels = make_data()
    pitfall = None
    try:
        if args.restore_only:
            clean_up_killed_runs(export_dir)
        else:
            expected = train_and_export(export_dir, features, labels)
            if args.show_pitfall:
                pitfall = show_pitfall(export_dir, features, labels, args.batch_size)
                explain_pitfall(pitfall)
            print()
        print(f"Restoring from {export_dir}")
        restored = infer_restored(export_dir, features, labels, args.batch_size)
        if args.restore_only:
            expected = load_expected(export_dir)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for value in restored:
        print(f"Restored values: {value[0]}")

    # Identical values are expected only from the very computation the trained
    # model ran: in the same process, on batches of the same size.
    same_batches = not args.restore_only and args.batch_size == BATCH_SIZE
    match = inferences_match(expected, restored, 0.0 if same_batches else TOLERANCE)
    print(f"\nInferences match: {match}")
    if args.show_pitfall and pitfall is None:
        return 1
    return 0 if match else 1


if __name__ == "__main__":
    sys.exit(main())
