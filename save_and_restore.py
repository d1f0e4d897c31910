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

The lesson's second half: a training run stopped mid-epoch resumes where it
was when its checkpoint holds the iterator's position too, restored by the
same rule: initialize the iterator, then restore. When the pipeline shuffles
(--shuffle), the position is a function of the step instead: each epoch's
order comes from its own seed, and a resumed run skips what it already read.

Runs on TensorFlow 2.0 to 2.22 through `tf.compat.v1` (with the `tf-keras`
package from 2.16 on), and unchanged on TensorFlow 1.15 and 1.8 (Python 3.5 and
later).

Usage:

    python3 save_and_restore.py                 # train, export, restore, compare
    python3 save_and_restore.py --restore-only  # restore and compare in a new process
    python3 save_and_restore.py --show-pitfall  # also show the FailedPreconditionError
    python3 save_and_restore.py --checkpoint-dir ckpt --max-steps 3  # stop after step 3
    python3 save_and_restore.py --checkpoint-dir ckpt  # resume from there, and finish
    python3 save_and_restore.py --shuffle --checkpoint-dir ckpt  # an order per epoch, too

Writes the SavedModel to ./simple (saved_model.pb, variables/, and the final
inference in assets.extra/expected_logits.npy), and with --checkpoint-dir a
checkpoint after every training step. Exits 0 when the restored inferences
match (or training stopped at --max-steps), 1 when they do not, 2 on bad input;
stopped by Ctrl-C or kill (130 or 143), it says in one line what it leaves.
"""

import os
import signal
import sys

# -----------------------------------------------------------------------------
# Setup: what must come before the imports, TensorFlow's above all


# Ctrl-C (SIGINT) and `kill` (SIGTERM) end a run with one line, not a traceback,
# from its first moment. The imports below take seconds, TensorFlow's most of
# them, and nothing is written until they are done, so a signal until then ends
# the run at once; main() takes over from there.
def stop_before_anything_is_written(signum, frame):
    """Ends the run: it was stopped before it wrote anything."""
    line = "interrupted by {} before anything was written\n"
    os.write(2, line.format(signal.Signals(signum).name).encode())
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, stop_before_anything_is_written)
    signal.signal(signal.SIGTERM, stop_before_anything_is_written)

import argparse
import contextlib
import gc
import importlib.util
import re
import shutil
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
# TensorFlow reads it once, when it is imported.
if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"

# TensorFlow itself is imported by import_tensorflow(), which main() calls once
# the command line is checked: --help or a mistyped option answers at once,
# not after the seconds the import takes. Everywhere below, `tf` is what your
# own code would import at its top: `import tensorflow.compat.v1 as tf`.
tf = None


def import_tensorflow():
    """Imports TensorFlow's TF1 API as `tf`, for the whole file."""
    global tf
    try:
        import tensorflow.compat.v1 as tf
    except ImportError:  # TensorFlow before 1.13 has no compat.v1: its API is the v1 API.
        import tensorflow as tf


# -----------------------------------------------------------------------------
# Names shared by the save side and the restore side

# Code written against the original tutorial looks these up, so they must not change.
EXPORT_DIR = "simple"
BATCH_SIZE_KEY = "batch_size_ph"  # Placeholder names double as signature keys.
FEATURES_KEY = "features_data_ph"
LABELS_KEY = "labels_data_ph"
PLACEHOLDER_KEYS = (BATCH_SIZE_KEY, FEATURES_KEY, LABELS_KEY)
DATASET_INIT = "dataset_init"  # The iterator's initializer op.
LOGITS_KEY = "logits"  # Signature output key; the tensor itself is dense/BiasAdd:0.
# The model's input: a batch from the iterator, unless a batch is fed here
# directly, as saved_model_cli and TF Serving do. Also a signature input key.
MODEL_INPUT_KEY = "features"
# The final inference, saved next to the model to check a later restore against.
# assets.extra/ is where a SavedModel keeps files TensorFlow does not load.
EXPECTED_LOGITS = os.path.join("assets.extra", "expected_logits.npy")
SERVE_TAG = "serve"  # tf.saved_model.tag_constants.SERVING
SIGNATURE_KEY = "serving_default"  # ...signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY

# The data, the model and its training.
SEED = 0
NUM_SAMPLES = 64
SEQUENCE_LENGTH = 10
NUM_FEATURES = 30
NUM_CLASSES = 5
GRU_UNITS = 10
BATCH_SIZE = 32
EPOCHS = 2
STEPS_PER_EPOCH = -(-NUM_SAMPLES // BATCH_SIZE)  # Batches per epoch; the last may be short.
TRAIN_STEPS = EPOCHS * STEPS_PER_EPOCH
LEARNING_RATE = 1e-2
# How close restored logits must be to the expected ones when they may come
# from another process or machine, or from batches of another size: the last
# bits of float32 sums can differ. Within one run, on the same batches, they
# must be identical.
TOLERANCE = 1e-6
# Training checkpoints are model.ckpt-<step>.*, named by the `checkpoint` file.
CHECKPOINT_NAME = "model.ckpt"


def new_session(graph):
    """Opens a session on the CPU."""
    # The model is tiny, so a GPU would not make it faster, and on the CPU every
    # run gives the same numbers (some GPU kernels do not promise that).
    config = tf.ConfigProto(device_count={"GPU": 0})
    return tf.Session(graph=graph, config=config)


# -----------------------------------------------------------------------------
# 1. Data


def make_data(seed=SEED):
    """Returns (features_array, labels_array): float32 (64, 10, 30), int32 one-hot (64, 5)."""
    rng = np.random.RandomState(seed)
    features_array = rng.randn(NUM_SAMPLES, SEQUENCE_LENGTH, NUM_FEATURES)
    labels_array = np.eye(NUM_CLASSES)[rng.randint(0, NUM_CLASSES, NUM_SAMPLES)]
    return features_array.astype(np.float32), labels_array.astype(np.int32)


# -----------------------------------------------------------------------------
# 2. Input pipeline


def build_input_pipeline(shuffle=False):
    """Builds placeholders -> Dataset -> reinitializable Iterator -> model input.

    With shuffle, training can read each epoch in an order of its own (part 8).

    Returns:
        placeholders: the placeholders the initializer is fed, by name.
        iterator: the Iterator, whose position a plain training checkpoint saves.
        init_op: the iterator's initializer, named DATASET_INIT.
        model_input: the next batch's features, or a batch fed in their place.
        next_labels: the next batch's labels.
    """
    batch_size_ph = tf.placeholder(tf.int64, [], name=BATCH_SIZE_KEY)
    features_ph = tf.placeholder(tf.float32, [None, None, NUM_FEATURES], name=FEATURES_KEY)
    labels_ph = tf.placeholder(tf.int32, [None, NUM_CLASSES], name=LABELS_KEY)
    placeholders = {BATCH_SIZE_KEY: batch_size_ph, FEATURES_KEY: features_ph, LABELS_KEY: labels_ph}
    dataset = tf.data.Dataset.from_tensor_slices((features_ph, labels_ph))
    if shuffle:
        dataset = shuffle_by_epoch(dataset, batch_size_ph, placeholders)
    else:
        dataset = dataset.batch(batch_size_ph)
    iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
    # A fixed name is what lets the restore side find this op in the loaded graph.
    init_op = iterator.make_initializer(dataset, name=DATASET_INIT)
    next_features, next_labels = iterator.get_next()
    # Without a feed this is the iterator's batch; fed, it bypasses the iterator,
    # so a server can run the export without knowing about iterators.
    model_input = tf.placeholder_with_default(
        next_features, [None, None, NUM_FEATURES], name=MODEL_INPUT_KEY
    )
    return placeholders, iterator, init_op, model_input, next_labels


def make_feed(placeholders, features_array, labels_array, batch_size):
    """The feed_dict of the iterator's initializer: the data set and the batch size."""
    return {
        placeholders[BATCH_SIZE_KEY]: batch_size,
        placeholders[FEATURES_KEY]: features_array,
        placeholders[LABELS_KEY]: labels_array,
    }


# -----------------------------------------------------------------------------
# 3. Model


def build_model(model_input):
    """Returns the logits (batch, NUM_CLASSES) of a bidirectional GRU and a dense layer."""
    # Fix: one cell object for both directions would tie their weights together.
    cell_fw = tf.nn.rnn_cell.GRUCell(GRU_UNITS)
    cell_bw = tf.nn.rnn_cell.GRUCell(GRU_UNITS)
    # Fix: no sequence_length, so no batch size is baked into the graph.
    (out_fw, out_bw), _ = tf.nn.bidirectional_dynamic_rnn(
        cell_fw, cell_bw, model_input, dtype=tf.float32
    )
    mean = tf.reduce_mean(tf.concat((out_fw, out_bw), 2), axis=1)
    return tf.layers.dense(mean, NUM_CLASSES, activation=None)  # dense/BiasAdd:0


# -----------------------------------------------------------------------------
# 4. Training


def build_train_op(logits, labels):
    """Returns the op that runs one Adam step on the softmax cross-entropy."""
    with tf.variable_scope("loss"):
        xent = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        loss = tf.reduce_mean(xent)
    # The number of steps taken, which a checkpoint saves with the rest.
    global_step = tf.train.get_or_create_global_step()
    with tf.variable_scope("optimizer"):
        return tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss, global_step=global_step)


def iterate(sess, init_op, feed_dict, fetches):
    """Initializes the iterator, then yields `fetches` for each batch until the data runs out."""
    sess.run(init_op, feed_dict=feed_dict)
    while True:
        try:
            yield sess.run(fetches)
        except tf.errors.OutOfRangeError:
            return


def train(sess, init_op, feed_dict, train_op, logits, checkpoint_dir, saver, max_steps):
    """Trains until global step max_steps (at most TRAIN_STEPS); returns the step reached.

    With a checkpoint_dir and its saver (part 8; None without), first resumes
    from the latest checkpoint there, if any, and saves one after every step.
    """
    step = 0
    state = tf.train.get_checkpoint_state(checkpoint_dir) if checkpoint_dir else None
    if state:
        # Initialize the iterator, then restore its position: TF 2 refuses to
        # restore an iterator that was not initialized (FailedPreconditionError),
        # and initializing it after the restore would send it back to the start.
        # (A shuffled pipeline is initialized at the checkpoint's step instead.)
        step = tf.train.load_variable(state.model_checkpoint_path, "global_step")
        sess.run(init_op, feed_dict=position_feed(feed_dict, step))
        saver.restore(sess, state.model_checkpoint_path)
        # Take over the earlier runs' checkpoints, so that max_to_keep counts them too.
        saver.recover_last_checkpoints(state.all_model_checkpoint_paths)
        epoch, batch = divmod(step, STEPS_PER_EPOCH)
        line = "Resumed from {path}: step {step}, epoch {epoch}, batch {batch}"
        print(line.format(path=state.model_checkpoint_path, step=step, epoch=epoch, batch=batch))
    while step < min(max_steps, TRAIN_STEPS):
        epoch, batch = divmod(step, STEPS_PER_EPOCH)
        # Each epoch reads the data from the start: the iterator is initialized
        # again. A resumed run goes on from where its restored iterator stands.
        if batch == 0:
            sess.run(init_op, feed_dict=position_feed(feed_dict, step))
        _, value = sess.run([train_op, logits])
        line = "Epoch {epoch}, batch {batch} | Sample value: {value}"
        print(line.format(epoch=epoch, batch=batch, value=value[0]))
        step += 1
        if checkpoint_dir:
            # The `checkpoint` file that names the latest checkpoint is replaced
            # (atomically) only once that checkpoint is complete, so a run killed
            # while saving resumes from the one before.
            prefix = os.path.join(checkpoint_dir, CHECKPOINT_NAME)
            saver.save(sess, prefix, global_step=step, write_meta_graph=False)
    return step


def final_inference(sess, init_op, feed_dict, logits):
    """Runs the trained model over the whole data set; returns the logits of each batch."""
    inferred = []
    for batch, value in enumerate(iterate(sess, init_op, feed_dict, logits)):
        line = "Epoch {epoch}, batch {batch} | Final inference | Sample value: {value}"
        print(line.format(epoch=EPOCHS, batch=batch, value=value[0]))
        inferred.append(value)
    return inferred


# -----------------------------------------------------------------------------
# 5. Export


def save_model(sess, export_path, placeholders, model_input, logits, inferred):
    """Writes the SavedModel at export_path, a folder that must not exist yet."""
    # The signature simple_save records is what the restore side asks for the
    # tensors: the inputs under their own names, the logits under LOGITS_KEY.
    inputs = {key: placeholders[key] for key in PLACEHOLDER_KEYS}
    inputs[MODEL_INPUT_KEY] = model_input
    tf.saved_model.simple_save(sess, export_path, inputs, {LOGITS_KEY: logits})
    os.mkdir(os.path.join(export_path, os.path.dirname(EXPECTED_LOGITS)))
    np.save(os.path.join(export_path, EXPECTED_LOGITS), np.concatenate(inferred))


# -----------------------------------------------------------------------------
# 6. Restore


def restore(sess, export_dir):
    """Loads the export into the session's graph; returns (placeholders, init_op, logits)."""
    meta_graph = tf.saved_model.loader.load(sess, [SERVE_TAG], export_dir)
    # simple_save recorded which tensors are the inputs and outputs: ask its
    # signature rather than hard-coding names such as dense/BiasAdd:0.
    signature = meta_graph.signature_def[SIGNATURE_KEY]
    graph = sess.graph
    placeholders = {
        key: graph.get_tensor_by_name(signature.inputs[key].name) for key in PLACEHOLDER_KEYS
    }
    logits = graph.get_tensor_by_name(signature.outputs[LOGITS_KEY].name)
    # The restored logits are computed from the restored iterator's get_next(),
    # so it is the restored iterator that must be initialized. Initializing a
    # new one leaves it untouched and fetching the logits fails with
    # FailedPreconditionError. Its initializer is found by the name it was saved with.
    init_op = graph.get_operation_by_name(DATASET_INIT)
    return placeholders, init_op, logits


def infer_restored(export_dir, features_array, labels_array, batch_size):
    """Loads the export into a fresh graph; returns the logits of each batch of its iterator."""
    with tf.Graph().as_default() as graph, new_session(graph) as sess:
        placeholders, init_op, logits = restore(sess, export_dir)
        feed_dict = make_feed(placeholders, features_array, labels_array, batch_size)
        return list(iterate(sess, init_op, feed_dict, logits))


# The pitfall, for contrast: what the original post did first.


def show_pitfall(export_dir, features_array, labels_array, batch_size):
    """Initializes a new iterator, not the restored one; returns the error's GetNext() line."""
    with tf.Graph().as_default() as graph, new_session(graph) as sess:
        placeholders, _, logits = restore(sess, export_dir)
        # The mistake: a new Dataset and iterator over the restored placeholders.
        dataset = tf.data.Dataset.from_tensor_slices(
            (placeholders[FEATURES_KEY], placeholders[LABELS_KEY])
        )
        iterator = dataset.batch(placeholders[BATCH_SIZE_KEY]).make_initializable_iterator()
        feed_dict = make_feed(placeholders, features_array, labels_array, batch_size)
        sess.run(iterator.initializer, feed_dict=feed_dict)
        try:
            sess.run(logits)
        except tf.errors.FailedPreconditionError as error:
            lines = error.message.splitlines()
            return next((line for line in lines if "GetNext()" in line), lines[0])
    return None  # Fetching the logits did not fail.


def explain_pitfall(message):
    """Prints what show_pitfall() found, and why."""
    print("\nThe pitfall: restored the export, then initialized a new iterator")
    if message is None:
        print("Fetching the restored logits did not fail.")
        return
    print("FailedPreconditionError: {}".format(message))
    print("Why: the new iterator is not the one the model reads from. The restored")
    print("logits are computed from the restored graph's own iterator, which nobody")
    print(
        "initialized. The fix: initialize the restored one, found by its name, "
        + DATASET_INIT
        + "."
    )


# -----------------------------------------------------------------------------
# 7. Compare


def inferences_match(expected, restored, tolerance=0.0):
    """Tells whether two lists of per-batch logits hold the same samples, within tolerance.

    The batches may be of other sizes; a missing or extra sample is a mismatch.
    """
    expected, restored = np.concatenate(expected), np.concatenate(restored)
    if expected.shape != restored.shape:
        return False
    return bool(np.all(np.abs(expected - restored) <= tolerance))


# -----------------------------------------------------------------------------
# 8. Resuming training where it stopped
#
# A checkpoint of the variables alone is not enough to resume mid-epoch: the
# resumed run would read the epoch's first batches again, silently training
# another model. The iterator's position must be saved too, and restored the
# same way the export's iterator is used: initialize it first, then restore
# (train() above does both, given this Saver). With --shuffle, the position is
# recomputed from the step instead (below).


def make_saveable_from_iterator(iterator):
    """Returns what lets a Saver save and restore the iterator's position."""
    if hasattr(tf.data, "experimental"):  # TensorFlow 1.13 and later.
        return tf.data.experimental.make_saveable_from_iterator(iterator)
    # TensorFlow 1.8 has it in tf.contrib, which takes a second to import: only here.
    return tf.contrib.data.make_saveable_from_iterator(iterator)


def make_checkpoint_saver(iterator=None):
    """Returns a Saver of the variables (Adam's and the step too), and of the iterator if given."""
    var_list = tf.global_variables()
    if iterator is not None:
        # Handed to this Saver alone. TF's guide adds it to the SAVEABLE_OBJECTS
        # collection instead; simple_save's own Saver then writes the iterator's
        # state into the export too, and TF 2 fails to load that export.
        var_list.append(make_saveable_from_iterator(iterator))
    return tf.train.Saver(var_list=var_list, max_to_keep=2)


# When the pipeline shuffles (--shuffle), the iterator's saved state is its
# whole shuffle buffer (TF 2), or cannot be saved at all (TF 1.8). So the
# position is made a function of the global step instead, and the checkpoint
# holds no iterator state: each epoch shuffles with its own seed, the same
# every run, and a resumed run skips the batches of its epoch already read.
SHUFFLE_BUFFER_KEY = "shuffle_buffer"
EPOCH_SEED_KEY = "epoch_seed"
SKIP_BATCHES_KEY = "skip_batches"


def shuffle_by_epoch(dataset, batch_size, placeholders):
    """Returns dataset shuffled and batched from a position fed at initialization.

    Adds the placeholders that feed the position to `placeholders`. Left unfed,
    they keep the data in order from its first batch, as the export serves it.
    """
    buffer_size = tf.placeholder_with_default(tf.constant(1, tf.int64), [], SHUFFLE_BUFFER_KEY)
    # A fixed seed would replay the same order at each initialization: one per epoch.
    epoch_seed = tf.placeholder_with_default(tf.constant(0, tf.int64), [], EPOCH_SEED_KEY)
    skip_batches = tf.placeholder_with_default(tf.constant(0, tf.int64), [], SKIP_BATCHES_KEY)
    placeholders.update(
        {
            SHUFFLE_BUFFER_KEY: buffer_size,
            EPOCH_SEED_KEY: epoch_seed,
            SKIP_BATCHES_KEY: skip_batches,
        }
    )
    return dataset.shuffle(buffer_size, seed=epoch_seed).batch(batch_size).skip(skip_batches)


def shuffle_feed(placeholders):
    """What training feeds a shuffled pipeline beside make_feed(): a buffer of the whole data."""
    return {
        placeholders[SHUFFLE_BUFFER_KEY]: NUM_SAMPLES,
        # Epoch 0 from its first batch; position_feed() sets both for a step.
        placeholders[EPOCH_SEED_KEY]: 0,
        placeholders[SKIP_BATCHES_KEY]: 0,
    }


def position_feed(feed_dict, step):
    """feed_dict, with a shuffled pipeline's position set for global step `step`."""
    epoch, batch = divmod(step, STEPS_PER_EPOCH)
    position = {EPOCH_SEED_KEY: epoch, SKIP_BATCHES_KEY: batch}
    return {key: position.get(key.op.name, value) for key, value in feed_dict.items()}


# =============================================================================
# Below: keeping your files safe, clear errors, the command line. Not part of
# the lesson.
# =============================================================================


def setup_tensorflow():
    """Imports TensorFlow, checks for tf-keras, quiets TF1 deprecation warnings, and builds
    TF1 graphs."""
    import_tensorflow()
    version = tuple(int(part) for part in tf.__version__.split(".")[:2])
    if version >= (2, 16) and importlib.util.find_spec("tf_keras") is None:
        sys.exit(
            "error: TensorFlow {} keeps the TF1 RNN cells and layers in the tf-keras package: "
            "pip install tf-keras~={}.{}.0".format(tf.__version__, *version)
        )
    # Every TF1 API used here is deprecated in TF 2 and would print ~50 lines of
    # warnings around a dozen lines of results. Errors are still shown.
    tf.logging.set_verbosity(tf.logging.ERROR)
    warnings.filterwarnings(
        "ignore", r"`tf\.(nn\.rnn_cell\.GRUCell|layers\.dense)` is deprecated", UserWarning
    )
    # TF 2.4 to 2.8 also warn about calls that their own TF1 layers make.
    warnings.filterwarnings("ignore", r"`layer\.(add_variable|apply)` is deprecated", UserWarning)
    # Build TF1 graphs: v1 control flow and variables, as TF 1.x had them. The
    # export is then the graph the original tutorial made, loadable by TF1-era code.
    if hasattr(tf, "disable_v2_behavior"):
        tf.disable_v2_behavior()
    # Importing TensorFlow leaves a quarter of a million objects for the garbage
    # collector to track; freezing them spares each later collection from scanning
    # them all again (half a second of a run here, exit included).
    if hasattr(gc, "freeze"):  # Python 3.7 and later.
        gc.freeze()


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


def reason(error):
    """The first sentence of what an exception says, for a one-line report."""
    message = getattr(error, "message", None) or str(error)
    # Saver.restore puts its own guess first, and the error itself after this.
    message = message.split("Original error:", 1)[-1]
    # TF 2's graph errors start with a header and an indented trace; the reason
    # is the first line that is neither.
    skip = re.compile(r"Graph execution error|Detected at node|Node:|\s|$")
    lines = [line for line in message.splitlines() if not skip.match(line)] or [message]
    # Its first sentence: "vs. calculated" does not end one.
    return re.split(r"\.\s+(?=[A-Z])", lines[0].strip())[0].rstrip(".")


@contextlib.contextmanager
def one_line_errors(template, *values):
    """Turns a TensorFlow error in the block into a one-line UsageError from template."""
    try:
        yield
    except (OSError, RuntimeError, ValueError, IndexError, tf.errors.OpError) as error:
        raise UsageError(template.format(*values, reason=reason(error)))
    except KeyError as error:  # An op that this (older) TensorFlow does not have.
        what = "TensorFlow {} has no op {}".format(tf.__version__, error)
        raise UsageError(template.format(*values, reason=what))


# -- The export: written beside the old one, then swapped into place ----------

# A new export is written in .simple.save_and_restore-<pid>-*, then swapped into place.
STAGING_TAG = ".save_and_restore-"


def is_saved_model(path):
    """Tells whether path is a real directory with a saved_model.pb(txt) at its top."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    names = ("saved_model.pb", "saved_model.pbtxt")
    return any(os.path.isfile(os.path.join(path, name)) for name in names)


def staging_prefix(export_dir):
    """Returns the name prefix of the temporary directories beside export_dir."""
    return ".{}{}".format(os.path.basename(export_dir), STAGING_TAG)


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


@contextlib.contextmanager
def folder_lock(folder, busy=None):
    """Holds an exclusive lock on folder (POSIX): waits for it, or given busy, raises UsageError(busy)."""
    # The lock is on the folder itself, so it leaves no file behind, and the
    # system releases it when its process dies, even by SIGKILL.
    try:
        import fcntl
    except ImportError:  # Not POSIX: no lock.
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise UsageError(busy)
        yield
    finally:
        os.close(descriptor)  # Releases the lock.


def swap_lock(export_dir):
    """Holds the lock on the folder that holds export_dir, for one swap at a time."""
    # Two runs swapping exports into the same place at once would interleave their renames.
    return folder_lock(os.path.dirname(os.path.abspath(export_dir)))


def remove_staging(staging, export_dir):
    """Removes a staging directory, first finishing a swap left half done in it."""
    # A run stopped between the two renames of swap_into_place() leaves no export
    # at export_dir, the previous one in <staging>/old, and the new one, complete,
    # in <staging>/new: the new one is moved into place.
    old, new = os.path.join(staging, "old"), os.path.join(staging, "new")
    with swap_lock(export_dir):
        if not os.path.lexists(export_dir) and os.path.isdir(old) and os.path.isdir(new):
            os.rename(new, export_dir)
    shutil.rmtree(staging, ignore_errors=True)


def clean_up_killed_runs(export_dir):
    """Removes the staging directories that killed runs left beside export_dir."""
    parent = os.path.dirname(os.path.abspath(export_dir))
    prefix = staging_prefix(export_dir)
    for name in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        pid = name[len(prefix) :].split("-")[0]
        # Those of runs still in progress are left alone.
        if name.startswith(prefix) and pid.isdigit() and not process_alive(int(pid)):
            remove_staging(os.path.join(parent, name), export_dir)


def check_export_dir(export_dir):
    """Raises UsageError unless export_dir may be replaced by an export; cleans up after killed runs.

    Called before training, so that a refusal does not come after the wait.
    """
    parent = os.path.dirname(os.path.abspath(export_dir))
    if not os.path.isdir(parent):
        raise UsageError("cannot export to {}: folder {} does not exist".format(export_dir, parent))
    here = os.path.join(os.getcwd(), "")
    if here.startswith(os.path.join(os.path.abspath(export_dir), "")):
        raise UsageError(
            "cannot export to {}: it is the folder you run in, or holds it, and the "
            "export is swapped into place by renaming; run from its parent folder".format(
                export_dir
            )
        )
    clean_up_killed_runs(export_dir)
    if os.path.lexists(export_dir) and not is_saved_model(export_dir):
        raise UsageError(
            "{} exists and is not a SavedModel, so it is left as it is: "
            "choose another --export-dir, or remove it yourself".format(export_dir)
        )


def make_staging(export_dir):
    """Returns a new staging directory beside export_dir, where the new export is written."""
    parent = os.path.dirname(os.path.abspath(export_dir))
    prefix = "{}{}-".format(staging_prefix(export_dir), os.getpid())
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=parent)
    except OSError as error:
        raise UsageError(
            "cannot export to {}: cannot write in {}: {}".format(export_dir, parent, error.strerror)
        )


def swap_into_place(new, export_dir, staging):
    """Moves the export at new to export_dir, moving any previous one into staging."""
    # Each rename is atomic, so export_dir holds a complete export, the old one or
    # the new one, at every moment but the one between the two renames.
    with swap_lock(export_dir):
        if os.path.lexists(export_dir):
            os.rename(export_dir, os.path.join(staging, "old"))
        os.rename(new, export_dir)


# -- Checks of an export and a checkpoint, read from their files --------------


def read_checkpoint(path, names=None):
    """Opens the checkpoint at path and reads the named tensors (all when None); returns it.

    A damaged checkpoint raises here, before TensorFlow's own restore would log about it.
    """
    reader = tf.train.NewCheckpointReader(path)
    saved = reader.get_variable_to_shape_map()
    for name in saved if names is None else [name for name in names if name in saved]:
        reader.get_tensor(name)
    return reader


def check_export(export_dir):
    """Raises UsageError, in one line, unless export_dir holds an export of this tutorial.

    Reads saved_model.pb as saved_model_cli does, without loading anything.
    """
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    if not os.path.isdir(export_dir):
        what = "is not a directory" if os.path.lexists(export_dir) else "does not exist"
        raise UsageError(
            "{} {} (looked for {}): run the full tutorial first to export a model, "
            "or point --export-dir at one".format(export_dir, what, os.path.abspath(export_dir))
        )
    if not os.listdir(export_dir):
        raise UsageError("{} is empty: it holds no SavedModel".format(export_dir))
    if not is_saved_model(export_dir):
        raise UsageError("{} has no saved_model.pb: it is not a SavedModel".format(export_dir))
    if not os.path.isfile(os.path.join(export_dir, "variables", "variables.index")):
        raise UsageError(
            "{} has no variables/variables.index: the export is incomplete".format(export_dir)
        )
    saved_model = saved_model_pb2.SavedModel()
    binary = os.path.join(export_dir, "saved_model.pb")
    name = "saved_model.pb" if os.path.isfile(binary) else "saved_model.pbtxt"
    try:
        with open(os.path.join(export_dir, name), "rb") as file:
            if name == "saved_model.pb":
                saved_model.ParseFromString(file.read())
            else:
                text_format.Merge(file.read().decode("utf-8"), saved_model)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError):
        raise UsageError(
            "cannot load {}: its {} is damaged: it cannot be parsed".format(export_dir, name)
        )
    tags = [set(meta.meta_info_def.tags) for meta in saved_model.meta_graphs]
    if {SERVE_TAG} not in tags:
        raise UsageError(
            "cannot load {}: it has no MetaGraphDef tagged '{}' (its tag sets: {})".format(
                export_dir, SERVE_TAG, ", ".join(str(sorted(tag)) for tag in tags) or "none"
            )
        )
    meta_graph = saved_model.meta_graphs[tags.index({SERVE_TAG})]
    not_ours = "it is not an export of this tutorial"
    if SIGNATURE_KEY not in meta_graph.signature_def:
        raise UsageError("{} has no {} signature: {}".format(export_dir, SIGNATURE_KEY, not_ours))
    signature = meta_graph.signature_def[SIGNATURE_KEY]
    missing = [key for key in PLACEHOLDER_KEYS if key not in signature.inputs]
    if LOGITS_KEY not in signature.outputs:
        missing.append(LOGITS_KEY)
    if missing:
        raise UsageError(
            "{}: its signature lacks {}: {}".format(export_dir, ", ".join(missing), not_ours)
        )
    if DATASET_INIT not in [node.name for node in meta_graph.graph_def.node]:
        raise UsageError("{} has no {} operation: {}".format(export_dir, DATASET_INIT, not_ours))
    with one_line_errors("cannot load {}: {reason}", export_dir):
        read_checkpoint(os.path.join(export_dir, "variables", "variables"))


# What a Saver writes in a checkpoint folder, temporary files of a killed save included.
CHECKPOINT_FILES = re.compile(
    r"checkpoint(\.tmp\w*)?$"
    r"|model\.ckpt-\d+(\.index|\.data-\d+-of-\d+|\.meta)(\.tempstate\d+)?$"
    r"|model\.ckpt-\d+_temp\w*$"
)
# How a checkpoint names the iterator's saved position: Iterator:0-state (TF 1.8),
# IteratorV2:0-state (TF 1.15 and 2.0), IteratorV2:0_STATE (later TF 2).
ITERATOR_STATE = re.compile(r".*Iterator.*(-state|_STATE)$")
# What to do with a checkpoint whose iterator position this TensorFlow cannot restore.
OTHER_VERSION = (
    "resume with the TensorFlow version that wrote it, or carry its weights, Adam and step "
    "into Keras 3 (docs/leaving-tf1.md)"
)


def iterator_state_keys():
    """The keys under which this TensorFlow saves the position of an iterator like the script's."""
    # Asked of this TensorFlow itself, in a graph of its own: the key changes
    # between versions (and the format behind it, among versions of one key).
    with tf.Graph().as_default():
        iterator = tf.data.Iterator.from_structure(tf.int64, tf.TensorShape([]))
        return [spec.name for spec in make_saveable_from_iterator(iterator).specs]


def make_checkpoint_dir(checkpoint_dir, export_dir):
    """Makes checkpoint_dir if it is new; refuses a file, or a folder the export would take."""
    checkpoints = os.path.realpath(checkpoint_dir)
    export = os.path.realpath(export_dir)
    # The export is swapped into place by renames in its folder, under a lock on
    # that folder: checkpoints there, or inside the export, would be in the way.
    if checkpoints == os.path.dirname(export) or (checkpoints + os.sep).startswith(export + os.sep):
        raise UsageError(
            "--checkpoint-dir {} is the export's folder, or inside the export {}: "
            "give a folder of its own".format(checkpoint_dir, export_dir)
        )
    if os.path.lexists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise UsageError(
            "--checkpoint-dir {} is not a folder: give a new folder, or one this "
            "script wrote its checkpoints in".format(checkpoint_dir)
        )
    try:
        os.mkdir(checkpoint_dir)
    except FileExistsError:
        pass
    except OSError as error:
        raise UsageError(
            "cannot make --checkpoint-dir {}: {}".format(checkpoint_dir, error.strerror)
        )


def check_checkpoint_dir(checkpoint_dir):
    """Raises UsageError unless checkpoint_dir holds nothing but this script's checkpoints."""
    others = sorted(name for name in os.listdir(checkpoint_dir) if not CHECKPOINT_FILES.match(name))
    if others:
        raise UsageError(
            "--checkpoint-dir {} holds files that are not this script's checkpoints ({}), "
            "so it is left as it is: choose another folder".format(
                checkpoint_dir, ", ".join(others[:3] + ["..."] * (len(others) > 3))
            )
        )
    if not os.access(checkpoint_dir, os.W_OK):
        raise UsageError("cannot write in --checkpoint-dir {}".format(checkpoint_dir))
    # The `checkpoint` file names the latest checkpoint; TensorFlow would ignore
    # one it cannot read, start over, and overwrite it.
    state_file = os.path.join(checkpoint_dir, "checkpoint")
    if os.path.lexists(state_file):
        try:
            state = tf.train.get_checkpoint_state(checkpoint_dir)
        except ValueError:  # An empty one, or one without model_checkpoint_path.
            state = None
        if state is None or not os.path.isfile(state.model_checkpoint_path + ".index"):
            raise UsageError(
                "{} names no checkpoint that exists: it is not this script's, or its "
                "checkpoints were removed".format(state_file)
            )


def check_checkpoint(checkpoint_dir, max_steps, shuffle=False):
    """Raises UsageError, in one line, unless the run can resume from checkpoint_dir.

    Compares the latest checkpoint, if any, with the variables of the default graph.
    """
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None:
        return
    path = state.model_checkpoint_path
    variables = {var.op.name: var.shape.as_list() for var in tf.global_variables()}
    damaged = "cannot resume from {}: it is damaged, or not a checkpoint of this script's graph"
    with one_line_errors(damaged + " ({reason})", path):
        reader = read_checkpoint(path, sorted(variables))
        saved = reader.get_variable_to_shape_map()
        wrong = [name for name in sorted(variables) if saved.get(name) != variables[name]]
        if wrong:
            raise ValueError("{} is missing or of another shape".format(wrong[0]))
        # A --shuffle run saves no iterator state: its position is a function of
        # the step, and means other batches than a plain run's.
        positions = [name for name in saved if ITERATOR_STATE.match(name)]
        if shuffle == bool(positions):
            line = "cannot resume from {}: it was written {} --shuffle: resume it {} --shuffle, "
            line += "or start anew in another --checkpoint-dir"
            raise UsageError(line.format(path, *["without" if shuffle else "with"] * 2))
        foreign = sorted(set(positions) - set(iterator_state_keys()))
        if foreign:
            line = "cannot resume from {}: it was written by another TensorFlow version, whose "
            line += "iterator position ({}) TensorFlow {} cannot restore: " + OTHER_VERSION
            raise UsageError(line.format(path, foreign[0], tf.__version__))
        step = int(reader.get_tensor("global_step"))
    if max_steps is not None and step > max_steps:
        line = "--max-steps {} is behind {}, which is already at step {}: "
        line += "give --max-steps {} or more, or none"
        raise UsageError(line.format(max_steps, path, step, step))


# -- The command line ---------------------------------------------------------


def train_and_export(export_dir, features_array, labels_array, args):
    """Parts 2 to 5 and 8, run safely: returns the final inference per batch.

    Returns None when training stopped at --max-steps, before exporting.
    """
    checkpoint_dir, max_steps = args.checkpoint_dir, args.max_steps
    check_export_dir(export_dir)  # First, so that a refusal comes before training.
    with contextlib.ExitStack() as stack:
        graph = stack.enter_context(tf.Graph().as_default())
        tf.set_random_seed(SEED)
        pipeline = build_input_pipeline(args.shuffle)
        placeholders, iterator, init_op, model_input, next_labels = pipeline
        # Resource variables, as TF2 has them: TF2 code that loads the export with
        # tf.saved_model.load() warns once per variable of the TF1 default kind.
        with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
            logits = build_model(model_input)
            train_op = build_train_op(logits, next_labels)
        saver = None
        if checkpoint_dir is not None:
            make_checkpoint_dir(checkpoint_dir, export_dir)
            # Held until the run ends: a second run would train into the same
            # checkpoints, each overwriting the other's `checkpoint` file.
            busy = "another run is training in --checkpoint-dir {}: wait for it to end, "
            busy += "or give another folder"
            stack.enter_context(folder_lock(checkpoint_dir, busy.format(checkpoint_dir)))
            check_checkpoint_dir(checkpoint_dir)
            # With --shuffle, the position is recomputed from the step: not saved.
            saver = make_checkpoint_saver(None if args.shuffle else iterator)
            check_checkpoint(checkpoint_dir, max_steps, args.shuffle)
        # Every check has passed: only now is anything written beside the export.
        staging = make_staging(export_dir)
        stack.callback(remove_staging, staging, export_dir)
        sess = stack.enter_context(new_session(graph))
        sess.run(tf.global_variables_initializer())
        feed_dict = make_feed(placeholders, features_array, labels_array, BATCH_SIZE)
        train_feed = dict(feed_dict)
        if args.shuffle:  # Only training shuffles: the final inference reads in order.
            train_feed.update(shuffle_feed(placeholders))
        steps = max_steps or TRAIN_STEPS
        try:
            step = train(sess, init_op, train_feed, train_op, logits, checkpoint_dir, saver, steps)
        except tf.errors.OpError as error:
            # Versions that name the position alike may still save it in forms that
            # the other cannot read (TF 2.4, 2.8, 2.11 and 2.21 among themselves):
            # restoring it is what tells.
            if error.op is None or error.op.type != "DeserializeIterator":
                raise
            line = "cannot resume from {}: TensorFlow {} cannot restore its iterator position "
            line += "({}), saved by another TensorFlow version: " + OTHER_VERSION
            path = tf.train.latest_checkpoint(checkpoint_dir)
            raise UsageError(line.format(path, tf.__version__, reason(error)))
        if step < TRAIN_STEPS:
            return None
        inferred = final_inference(sess, init_op, feed_dict, logits)
        print("\nSaving to {}".format(export_dir))
        # simple_save refuses a directory that exists, and deleting the previous
        # export first would leave nothing in its place if the run died while saving.
        new = os.path.join(staging, "new")
        save_model(sess, new, placeholders, model_input, logits, inferred)
        swap_into_place(new, export_dir, staging)
        return inferred


def load_expected(export_dir):
    """Reads the final inference the full run saved next to the model, as a list of one array."""
    path = os.path.join(export_dir, EXPECTED_LOGITS)
    if not os.path.isfile(path):
        raise UsageError(
            "{} is missing: --restore-only needs an export made by this script".format(path)
        )
    try:
        return [np.load(path)]
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty file.
        raise UsageError("cannot read {}: {}".format(path, reason(error)))


def positive_int(text):
    """Parses a command-line value that must be a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer, not {!r}".format(text))
    return value


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a bad argument in one line, without the usage."""

    def error(self, message):
        self.exit(2, "error: {} (see --help)\n".format(message))


def parse_args(argv=None):
    """Parses the command line (sys.argv[1:] when argv is None)."""
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
    parser.add_argument(
        "--checkpoint-dir",
        help="save a checkpoint there after every training step, and resume from the "
        "latest one it holds",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        help="stop training after this global step, as an interrupted run would "
        "(needs --checkpoint-dir)",
    )
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="train on each epoch in an order of its own (the same every run); with "
        "--checkpoint-dir, the position resumes from the step",
    )
    mode.add_argument(
        "--show-pitfall",
        action="store_true",
        help="after saving, initialize a new iterator instead of the restored one, and "
        "show the FailedPreconditionError that follows",
    )
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.checkpoint_dir is None:
        parser.error("--max-steps needs --checkpoint-dir, where the next run resumes from")
    for flag in ("checkpoint_dir", "shuffle"):
        if args.restore_only and getattr(args, flag) not in (None, False):
            name = "--" + flag.replace("_", "-")
            parser.error("{} is for training: not allowed with --restore-only".format(name))
    return args


def explain_stop(checkpoint_dir):
    """Prints where a run stopped by --max-steps stands, and how to go on."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    line = "\nStopped as --max-steps asked, after step {step} of {steps}."
    print(line.format(step=path.rsplit("-", 1)[1], steps=TRAIN_STEPS))
    print("Run the same command without --max-steps to resume from {}.".format(path))


@contextlib.contextmanager
def stderr_hidden():
    """Sends what is written to stderr in the block to /dev/null, C++ logs included."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run(args, export_dir, stop_signals):
    """Runs the tutorial as args say; returns the exit status (0 match, 1 mismatch)."""
    features_array, labels_array = make_data()
    pitfall = None
    if args.restore_only:
        clean_up_killed_runs(export_dir)
    else:
        expected = train_and_export(export_dir, features_array, labels_array, args)
        if expected is None:
            explain_stop(args.checkpoint_dir)
            return 0
        if args.show_pitfall:
            # TensorFlow 2 logs the step the pitfall makes fail, as a warning
            # on stderr: the error itself is printed and explained below.
            with one_line_errors("cannot load {}: {reason}", export_dir), stderr_hidden():
                pitfall = show_pitfall(export_dir, features_array, labels_array, args.batch_size)
            explain_pitfall(pitfall)
        print()
    print("Restoring from {}".format(export_dir))
    check_export(export_dir)
    with one_line_errors("cannot load {}: {reason}", export_dir):
        restored = infer_restored(export_dir, features_array, labels_array, args.batch_size)
    if args.restore_only:
        expected = load_expected(export_dir)
    for value in restored:
        print("Restored values: {}".format(value[0]))

    # Identical values are expected only from the very computation the trained
    # model ran: in the same process, on batches of the same size.
    same_batches = not args.restore_only and args.batch_size == BATCH_SIZE
    match = inferences_match(expected, restored, 0.0 if same_batches else TOLERANCE)
    # The run is over: a signal from now on could only make the verdict a lie.
    stop_signals.uninstall()
    print("\nInferences match: {}".format(match))
    if args.show_pitfall and pitfall is None:
        return 1
    return 0 if match else 1


# -- Interrupted: Ctrl-C (SIGINT) and kill (SIGTERM) ---------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the run cleans up, says what it leaves, and ends.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` stops it.
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """Turns SIGINT and SIGTERM into Interrupted, raised once, where it cannot break a step.

    Not inside TensorFlow's code, nor inside `protected` functions (the export's
    swap and clean-up): as the run leaves them.
    """

    def __init__(self, protected=()):
        # TensorFlow's Python code, and that of the Keras its TF1 layers come from.
        modules = [sys.modules.get(name) for name in ("tensorflow", "tf_keras", "keras")]
        files = [getattr(module, "__file__", None) for module in modules]
        self.folders = tuple(os.path.join(os.path.dirname(path), "") for path in files if path)
        self.codes = [function.__code__ for function in protected]
        self.signum = None
        self.over = False

    def install(self):
        """From now on, SIGINT and SIGTERM stop the run."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum, frame):
        """The signal handler: raises Interrupted now, or as the run leaves protected code."""
        # After the first signal, or once the run is over, others are ignored:
        # they must not cut short the clean-up, nor the exit.
        if self.signum is not None or self.over:
            return
        self.signum = signum
        # Raised inside TensorFlow's code, the exception can come out mangled, be
        # swallowed, or leave a graph half built (an export without a variable was
        # seen): it is raised in the frame that called TensorFlow, as its next line
        # runs, the way a debugger stops there.
        caller = self.caller_of_protected(frame)
        if caller is None:
            raise Interrupted(signum)
        caller.f_trace = self.stop_here
        sys.settrace(lambda frame, event, arg: None)  # Frames to come are not traced.

    def stop_here(self, frame, event, arg):
        """The trace function of the frame that called protected code: the run stops there."""
        raise Interrupted(self.signum)  # Python stops tracing as this is raised.

    def caller_of_protected(self, frame):
        """The frame that called the protected code that frame runs in; None if it runs in none."""
        caller = None
        while frame is not None:
            code = frame.f_code
            if code.co_filename.startswith(self.folders) or code in self.codes:
                caller = frame.f_back
            frame = frame.f_back
        return caller

    def uninstall(self):
        """The run is over: a signal now could only cut its exit short."""
        self.over = True
        sys.settrace(None)


def identity(path):
    """Tells a folder at path from another that replaced it there; None if nothing is there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def explain_interrupt(signum, args, export_dir, export_before):
    """The one line an interrupted run ends with: what it leaves, and how to go on."""
    said = "interrupted by {}: ".format(signal.Signals(signum).name)
    if args.restore_only:
        return said + "nothing was written"
    now = identity(export_dir)
    if now is None:
        export = "nothing was exported to {}".format(export_dir)
    elif now != export_before:
        return said + "{} holds this run's export".format(export_dir)
    elif is_saved_model(export_dir):
        export = "the previous export is in place in {}".format(export_dir)
    else:
        export = "{} is as it was".format(export_dir)
    if args.checkpoint_dir is None:
        return said + export + "; without --checkpoint-dir, the same command trains from the start"
    path = tf.train.latest_checkpoint(args.checkpoint_dir)
    if path is None:
        training = "no checkpoint was complete in {}: the same command starts over"
        training = training.format(args.checkpoint_dir)
    else:
        training = "{} (step {} of {}) is complete, and the same command resumes from it"
        training = training.format(path, path.rsplit("-", 1)[1], TRAIN_STEPS)
    return said + training + "; " + export


def main(argv=None):
    """Runs the tutorial; returns the exit status: 0, 1 mismatch, 2 bad input, 128 + signal."""
    args = parse_args(argv)
    setup_tensorflow()
    export_dir = os.path.normpath(args.export_dir)
    export_before = identity(export_dir)
    stop_signals = StopSignals(protected=(swap_into_place, remove_staging))
    stop_signals.install()
    try:
        return run(args, export_dir, stop_signals)
    except UsageError as error:
        print("error: {}".format(error), file=sys.stderr)
        return 2
    except Interrupted as interrupted:
        line = explain_interrupt(interrupted.signum, args, export_dir, export_before)
        print(line, file=sys.stderr)
        return 128 + interrupted.signum
    finally:
        stop_signals.uninstall()


if __name__ == "__main__":
    sys.exit(main())
