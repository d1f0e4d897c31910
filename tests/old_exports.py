"""Exports made the TF1 way, fed by a tf.data iterator, for upgrade_export.py to upgrade.

    python3 old_exports.py KIND FOLDER

writes FOLDER/export (a SavedModel) and FOLDER/expected.npz: a batch the
iterator gave (`input`) and what the loaded export computed from it, through
its own iterator (one array per output key). KIND is one of:

    post      the 2018 post's pattern: a shared GRU cell, sequence_length=[10] * 32,
              a reinitializable iterator whose initializer is dataset_init
    unnamed   make_initializable_iterator() with its initializer never named,
              an LSTM, resource variables, two outputs
    feedable  an iterator behind a string-handle placeholder, dense layers
    oneshot   a one-shot iterator over data held in the graph

It runs on TensorFlow 1.8 as on 2.x (through compat.v1), so it is Python 3.5.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf

if hasattr(tf, "compat") and hasattr(tf.compat, "v1"):
    tf = tf.compat.v1
    tf.disable_v2_behavior()


def post(sess, rng):
    """The 2018 post's graph; returns the outputs, the get_next input, and how to start it."""
    batch_size_ph = tf.placeholder(tf.int64, name="batch_size_ph")
    features_data_ph = tf.placeholder(tf.float32, [None, None, 30], "features_data_ph")
    labels_data_ph = tf.placeholder(tf.int32, [None, 5], "labels_data_ph")
    dataset = tf.data.Dataset.from_tensor_slices((features_data_ph, labels_data_ph))
    dataset = dataset.batch(batch_size_ph)
    iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
    iterator.make_initializer(dataset, name="dataset_init")
    features, labels = iterator.get_next()
    cell = tf.nn.rnn_cell.GRUCell(10)
    (fw, bw), _ = tf.nn.bidirectional_dynamic_rnn(
        cell, cell, features, sequence_length=[10] * 32, dtype=tf.float32, swap_memory=True
    )
    mean = tf.reduce_mean(tf.concat((fw, bw), 2), axis=1)
    logits = tf.layers.dense(mean, 5, activation=None)
    loss = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits, labels=labels)
        if hasattr(tf.nn, "softmax_cross_entropy_with_logits_v2")
        else tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=labels)
    )
    train = tf.train.AdamOptimizer(1e-2).minimize(loss)
    data = {
        "features_data_ph": rng.randn(64, 10, 30).astype(np.float32),
        "labels_data_ph": np.eye(5)[rng.randint(0, 5, 64)].astype(np.int32),
        "batch_size_ph": np.int64(32),
    }
    inputs = {"batch_size_ph": batch_size_ph, "features_data_ph": features_data_ph}
    inputs["labels_data_ph"] = labels_data_ph
    return inputs, {"logits": logits}, train, data, data["features_data_ph"][:32]


def unnamed(sess, rng):
    """An LSTM over 12 steps of 4 values, its iterator's initializer left unnamed."""
    tf.get_variable_scope().set_use_resource(True)
    signal_ph = tf.placeholder(tf.float32, [None, 12, 4], "signal_ph")
    target_ph = tf.placeholder(tf.int64, [None], "target_ph")
    dataset = tf.data.Dataset.from_tensor_slices((signal_ph, target_ph)).batch(8)
    iterator = dataset.make_initializable_iterator()
    signal, target = iterator.get_next()
    with tf.variable_scope("encoder"):
        outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(6), signal, dtype=tf.float32)
    scores = tf.layers.dense(outputs[:, -1], 3, name="scores")
    loss = tf.losses.sparse_softmax_cross_entropy(target, scores)
    train = tf.train.AdamOptimizer(1e-2).minimize(loss)
    data = {
        "signal_ph": rng.randn(20, 12, 4).astype(np.float32),
        "target_ph": rng.randint(0, 3, 20).astype(np.int64),
    }
    inputs = {"signal_ph": signal_ph, "target_ph": target_ph}
    outputs = {"scores": scores, "classes": tf.argmax(scores, axis=1, name="classes")}
    return inputs, outputs, train, data, data["signal_ph"][:8]


def feedable(sess, rng):
    """Dense layers behind a string handle; the training iterator is one of many."""
    handle_ph = tf.placeholder(tf.string, [], "handle_ph")
    rows_ph = tf.placeholder(tf.float32, [None, 6], "rows_ph")
    dataset = tf.data.Dataset.from_tensor_slices((rows_ph, tf.zeros_like(rows_ph[:, 0])))
    dataset = dataset.batch(5)
    iterator = tf.data.Iterator.from_string_handle(
        handle_ph, dataset.output_types, dataset.output_shapes
    )
    rows, _weights = iterator.get_next()
    training = dataset.make_initializable_iterator()
    tf.add_to_collection("train_init", training.initializer)
    tf.add_to_collection("train_handle", training.string_handle())
    hidden = tf.layers.dense(rows, 16, activation=tf.nn.relu, name="hidden")
    y = tf.layers.dense(hidden, 2, name="y")
    train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_mean(y * y))
    data = {"rows_ph": rng.randn(15, 6).astype(np.float32)}
    return {"handle": handle_ph}, {"y": y}, train, data, data["rows_ph"][:5]


def oneshot(sess, rng):
    """A one-shot iterator over arrays held in the graph: a signature with no input."""
    points = rng.randn(12, 5).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((points, np.arange(12))).batch(4)
    point, _index = dataset.make_one_shot_iterator().get_next()
    logits = tf.layers.dense(tf.layers.dense(point, 7, tf.nn.tanh), 3, name="logits")
    probabilities = tf.nn.softmax(logits, name="probabilities")
    return {}, {"probabilities": probabilities}, None, {}, points[:4]


KINDS = {"post": post, "unnamed": unnamed, "feedable": feedable, "oneshot": oneshot}


def start(sess, graph, kind, feeds):
    """Starts the iterator of a loaded export, as its maker would; returns the run's feeds."""
    if kind == "post":
        sess.run(graph.get_operation_by_name("dataset_init"), feeds)
    elif kind == "unnamed":
        # Never named: found by its type, as docs/serving-and-tf2.md shows.
        (init,) = [op for op in graph.get_operations() if op.type == "MakeIterator"]
        sess.run(init, feeds)
    elif kind == "feedable":
        sess.run(tf.get_collection("train_init"), feeds)
        handle = sess.run(tf.get_collection("train_handle")[0])
        return {"handle_ph:0": handle}
    return {}


def main(kind, folder):
    make = KINDS[kind]
    export = os.path.join(folder, "export")
    rng = np.random.RandomState(0)
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        inputs, outputs, train, data, batch = make(sess, rng)
        placeholders = {name + ":0": value for name, value in data.items()}
        sess.run(tf.global_variables_initializer())
        if train is not None:
            run_feeds = start(sess, tf.get_default_graph(), kind, placeholders)
            sess.run(train, run_feeds)  # One step: optimizer slots exist, as in a real export.
        signature = tf.saved_model.signature_def_utils.build_signature_def(
            inputs={k: tf.saved_model.utils.build_tensor_info(v) for k, v in inputs.items()},
            outputs={k: tf.saved_model.utils.build_tensor_info(v) for k, v in outputs.items()},
            method_name="tensorflow/serving/predict",
        )
        builder = tf.saved_model.builder.SavedModelBuilder(export)
        builder.add_meta_graph_and_variables(
            sess, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()
    # What the export computes through its own iterator, loaded afresh.
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], export)
        run_feeds = start(sess, graph, kind, placeholders)
        fetches = {k: v.name for k, v in meta.signature_def["serving_default"].outputs.items()}
        expected = sess.run(fetches, run_feeds)
    np.savez(os.path.join(folder, "expected.npz"), input=batch, **expected)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
        sys.exit("usage: python3 old_exports.py {{{}}} FOLDER".format(",".join(sorted(KINDS))))
    main(*sys.argv[1:])
