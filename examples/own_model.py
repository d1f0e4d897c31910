"""A model of your own, of the common kind: saved, restored in a fresh graph, and served.

Usage: python3 examples/own_model.py: writes own/ in the folder it runs in.

Token ids and their lengths come from one tf.data pipeline; an embedding and a stack of two
LSTMCells, fed the lengths from the same pipeline, classify each sequence. The program trains
briefly, exports with a bypass input for each tensor the model reads, restores the export in a
fresh graph through its own iterator and through the bypasses, and checks both give the trained
model's logits. Writes own/ (and refuses to replace it): the SavedModel, with the final
inference (assets.extra/expected_logits.npy) and its inputs (assets.extra/inputs.npz).
"""

import os
import sys
import warnings

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit("usage: python3 {}: it takes no arguments (--help says more)".format(sys.argv[0]))

EXPORT_DIR = "own"
if __name__ == "__main__":
    # What it writes, checked before TensorFlow's import, which takes seconds.
    if os.path.isfile(os.path.join(EXPORT_DIR, "saved_model.pb")):
        sys.exit("{0}/ holds an export: remove it (rm -rf {0}) to export again".format(EXPORT_DIR))
    if os.path.lexists(EXPORT_DIR):
        sys.exit("{} exists and is not an export: it is left as it is".format(EXPORT_DIR))
    if not os.access(".", os.W_OK):
        sys.exit(
            "Cannot write in {}: run this program in a folder you can write to".format(os.getcwd())
        )

import numpy as np

# The setup lines of the tutorial's script that TF1 code on TensorFlow 2 needs too.
# TensorFlow 2.16 and later keep the TF1 cells and layers in tf-keras, used only with this.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
try:
    import tensorflow.compat.v1 as tf
except ImportError:  # TensorFlow 1.x before 1.13: its API is the v1 API.
    import tensorflow as tf
tf.logging.set_verbosity(tf.logging.ERROR)  # The TF1 API's deprecation notices.
warnings.filterwarnings("ignore", r"`tf\.(nn\.rnn_cell|layers)\.", UserWarning)
if hasattr(tf, "disable_v2_behavior"):
    tf.disable_v2_behavior()  # TF1 graphs, sessions and control flow.

SEED, SAMPLES, VOCABULARY, MAX_LENGTH = 0, 500, 50, 20
EMBEDDING, UNITS, CLASSES, BATCH_SIZE, EPOCHS = 8, 16, 2, 16, 2
# The tensors the model reads from get_next(): each has a bypass input of this name.
MODEL_INPUTS = ("tokens", "lengths")


def make_data():
    """Sequences of 3 to 20 token ids, padded with 0 to 20, their lengths and labels."""
    rng = np.random.RandomState(SEED)
    lengths = rng.randint(3, MAX_LENGTH + 1, SAMPLES).astype(np.int32)
    tokens = rng.randint(1, VOCABULARY, (SAMPLES, MAX_LENGTH)).astype(np.int32)
    tokens[np.arange(MAX_LENGTH) >= lengths[:, None]] = 0
    labels = (tokens[np.arange(SAMPLES), lengths - 1] % CLASSES).astype(np.int32)
    return {"tokens": tokens, "lengths": lengths, "labels": labels}


def build_pipeline():
    """Placeholders -> Dataset -> Iterator -> the model's inputs, each with its bypass."""
    data = {
        "tokens": tf.placeholder(tf.int32, [None, MAX_LENGTH], name="tokens_data"),
        "lengths": tf.placeholder(tf.int32, [None], name="lengths_data"),
        "labels": tf.placeholder(tf.int32, [None], name="labels_data"),
        "batch_size": tf.placeholder(tf.int64, [], name="batch_size"),
        # Only training feeds these: unfed, the pipeline reads in order, as an
        # export must (see "A shuffle left in the export" on the page).
        "shuffle_buffer": tf.placeholder_with_default(
            tf.constant(1, tf.int64), [], "shuffle_buffer"
        ),
        "epoch_seed": tf.placeholder_with_default(tf.constant(0, tf.int64), [], "epoch_seed"),
    }
    dataset = tf.data.Dataset.from_tensor_slices((data["tokens"], data["lengths"], data["labels"]))
    dataset = dataset.shuffle(data["shuffle_buffer"], seed=data["epoch_seed"])
    dataset = dataset.batch(data["batch_size"])
    iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
    init_op = iterator.make_initializer(dataset, name="dataset_init")
    next_tokens, next_lengths, next_labels = iterator.get_next()
    # Every tensor the model reads from get_next() gets a bypass of its own: a
    # server feeds them all, and one left to the iterator fails (FailedPrecondition).
    tokens = tf.placeholder_with_default(next_tokens, [None, MAX_LENGTH], name="tokens")
    lengths = tf.placeholder_with_default(next_lengths, [None], name="lengths")
    return data, init_op, {"tokens": tokens, "lengths": lengths}, next_labels


def build_model(inputs):
    """Logits (batch, CLASSES) of an embedding and two stacked LSTMCells."""
    embedding = tf.get_variable("embedding", [VOCABULARY, EMBEDDING])
    sequences = tf.nn.embedding_lookup(embedding, inputs["tokens"])
    cells = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(UNITS) for _ in range(2)])
    # The lengths come from the data, like the tokens: never a constant such as
    # [20] * 16, which bakes a batch size into the graph.
    _, states = tf.nn.dynamic_rnn(
        cells, sequences, sequence_length=inputs["lengths"], dtype=tf.float32
    )
    return tf.layers.dense(states[-1].h, CLASSES, name="logits")  # The top layer's final h.


def batches(sess, init_op, feed, fetches):
    """Initializes the iterator with feed, then yields fetches for each batch."""
    sess.run(init_op, feed_dict=feed)
    while True:
        try:
            yield sess.run(fetches)
        except tf.errors.OutOfRangeError:
            return


def train_and_export(arrays):
    """Trains, exports to EXPORT_DIR, and returns the final inference (in data order)."""
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        tf.set_random_seed(SEED)
        data, init_op, inputs, labels = build_pipeline()
        # Resource variables, as TF2 has them: TF2 code loads the export without warnings.
        with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
            logits = build_model(inputs)
            loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
            train_op = tf.train.AdamOptimizer(1e-2).minimize(loss)
        sess.run(tf.global_variables_initializer())
        feed = {data[key]: arrays[key] for key in ("tokens", "lengths", "labels")}
        feed[data["batch_size"]] = BATCH_SIZE
        for epoch in range(EPOCHS):
            # Training alone shuffles: a buffer of the whole data, a seed per epoch.
            shuffled = dict(feed)
            shuffled.update({data["shuffle_buffer"]: SAMPLES, data["epoch_seed"]: epoch})
            losses = [value for _, value in batches(sess, init_op, shuffled, [train_op, loss])]
            print("Epoch {} | mean loss {:.4f}".format(epoch, np.mean(losses)))
        inferred = np.concatenate(list(batches(sess, init_op, feed, logits)))
        # The signature: the bypasses, and the pipeline's placeholders, as the tutorial's has.
        signature_inputs = dict(inputs)
        for key in ("tokens", "lengths", "labels"):
            signature_inputs[key + "_data"] = data[key]
        signature_inputs["batch_size"] = data["batch_size"]
        tf.saved_model.simple_save(sess, EXPORT_DIR, signature_inputs, {"logits": logits})
    extra = os.path.join(EXPORT_DIR, "assets.extra")
    os.mkdir(extra)
    np.save(os.path.join(extra, "expected_logits.npy"), inferred)
    # A sample request: the arrays the final inference read, one per bypass key.
    np.savez(os.path.join(extra, "inputs.npz"), **{key: arrays[key] for key in MODEL_INPUTS})
    return inferred


def restore_and_infer(arrays):
    """Loads the export in a fresh graph; returns its logits via its iterator, then its bypasses."""
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta_graph = tf.saved_model.loader.load(sess, ["serve"], EXPORT_DIR)
        signature = meta_graph.signature_def["serving_default"]
        tensor = {
            key: graph.get_tensor_by_name(info.name) for key, info in signature.inputs.items()
        }
        logits = graph.get_tensor_by_name(signature.outputs["logits"].name)
        # Through the restored iterator: its initializer, found by its name.
        init_op = graph.get_operation_by_name("dataset_init")
        feed = {tensor[key + "_data"]: arrays[key] for key in ("tokens", "lengths", "labels")}
        feed[tensor["batch_size"]] = 100
        through_iterator = np.concatenate(list(batches(sess, init_op, feed, logits)))
        # Through the bypasses, as a server does: every one of them fed.
        through_bypasses = sess.run(logits, {tensor[key]: arrays[key] for key in MODEL_INPUTS})
    return through_iterator, through_bypasses


if __name__ == "__main__":
    arrays = make_data()
    expected = train_and_export(arrays)
    print("Saved to {}/".format(EXPORT_DIR))
    through_iterator, through_bypasses = restore_and_infer(arrays)
    # Another batch size may sum in another order: compared within 1e-6.
    iterator_ok = np.allclose(through_iterator, expected, rtol=0, atol=1e-6)
    bypasses_ok = np.allclose(through_bypasses, expected, rtol=0, atol=1e-6)
    print("Restored through its iterator: {}".format(iterator_ok))
    print("Restored through tokens and lengths fed directly: {}".format(bypasses_ok))
    sys.exit(0 if iterator_ok and bypasses_ok else 1)
