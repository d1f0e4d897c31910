"""Exports made the TF1 way, fed by a tf.data iterator, for upgrade_export.py to upgrade.

    python3 old_exports.py KIND FOLDER

writes FOLDER/export (a SavedModel), and what the loaded export computed through
its own iterator: FOLDER/inputs.npz, what the new export is to be fed under each
of its input keys (the iterator's components the model reads, and the signature
inputs it reads directly), and FOLDER/expected.npz, its outputs (one array per
output key). KIND is one of:

    post        the 2018 post's pattern: a shared GRU cell, sequence_length=[10] * 32,
                a reinitializable iterator whose initializer is dataset_init
    unnamed     make_initializable_iterator() with its initializer never named,
                an LSTM, resource variables, two outputs
    feedable    an iterator behind a string-handle placeholder, dense layers
    oneshot     a one-shot iterator over data held in the graph
    batchnorm   a convolution and tf.layers.batch_normalization, training= a bool
                placeholder in the signature (a tf.cond in the graph)
    frozen_bn   the same, training=False, a Python bool
    batch_size  an RNN whose zero_state reads the batch_size placeholder that
                dataset.batch() reads too, a DropoutWrapper's keep_prob placeholder
    remainder   batch(16, drop_remainder=True): the iterator declares 16 rows
    metric      an eval signature: logits, predictions and a scalar accuracy
    dict        a dict element {"x": ..., "y": ...} of unnamed placeholders, two heads
    padded      padded_batch() of token ids, their lengths computed in map(), which
                the upgrade carries over
    tfrecord    TFRecord files, parse_single_example, set_shape after get_next()
    shuffled    a one-shot iterator over NumPy arrays held in the graph, shuffled

and these, which are not exports but what TF1 training left (FOLDER/inputs.npz
and FOLDER/expected.npz as for the others; LEFT[KIND][1] is what to upgrade):

    saver       the post's graph, saved by tf.train.Saver: train/model.ckpt-2
    queue       queue runners over fixed-length record files (a reader, a random
                flip, shuffle_batch, a reshape by the batch size), trained by
                MonitoredTrainingSession with moving averages: train/, its
                checkpoint_dir (FOLDER/expected_averages.npz: with those)
    estimator   an Estimator's graph: feature columns over a dict element, a
                partitioned hidden layer, a head's logits and predictions, a
                global step, checkpoints in model_dir/
    frozen      the post's graph frozen: frozen.pb, and frozen.pbtxt as text

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
tf.logging.set_verbosity(tf.logging.ERROR)


def made(inputs, outputs, train, data, keys, **more):
    """What a kind builds.

    inputs, outputs: the signature's tensors by key; train: the training op or
    None; data: the values of the placeholders that start the iterator, by
    name; keys: the new export's input key for each component of get_next, or
    None for one no output reads; more: scalars, the values of the signature
    inputs the model reads directly, by key (fed at every run), train_feeds,
    what training feeds on top, and rows: for an export whose pipeline the
    upgrade carries over (it maps its elements), what the new one is fed in
    place of get_next's components: the rows of the first batch, as fed to
    the pipeline, by key.
    """
    kind = {"inputs": inputs, "outputs": outputs, "train": train, "data": data, "keys": keys}
    for name in ("scalars", "train_feeds", "rows"):
        kind[name] = more.get(name, {})
    return kind


def post(folder, rng):
    """The 2018 post's graph."""
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
    return made(inputs, {"logits": logits}, train, data, ["features_data_ph", None])


def unnamed(folder, rng):
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
    return made(inputs, outputs, train, data, ["signal_ph", None])


def feedable(folder, rng):
    """Dense layers behind a string handle; the training iterator is one of many."""
    handle_ph = tf.placeholder(tf.string, [], "handle_ph")
    rows_ph = tf.placeholder(tf.float32, [None, 6], "rows_ph")
    dataset = tf.data.Dataset.from_tensor_slices((rows_ph, tf.zeros_like(rows_ph[:, 0])))
    dataset = dataset.batch(8)
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
    # Which dataset a string handle chooses is not in the graph: no name to give.
    return made({"handle": handle_ph}, {"y": y}, train, data, ["input", None])


def oneshot(folder, rng):
    """A one-shot iterator over arrays held in the graph: a signature with no input."""
    points = rng.randn(12, 5).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((points, np.arange(12))).batch(8)
    point, _index = dataset.make_one_shot_iterator().get_next()
    logits = tf.layers.dense(tf.layers.dense(point, 7, tf.nn.tanh), 3, name="logits")
    probabilities = tf.nn.softmax(logits, name="probabilities")
    return made({}, {"probabilities": probabilities}, None, {}, ["input", None])


def images(rng, count):
    """count 8x8 single-channel images and labels of 3 classes."""
    return rng.randn(count, 8, 8, 1).astype(np.float32), rng.randint(0, 3, count).astype(np.int64)


def convolution(training):
    """A classifier of 8x8 images with batch norm; training: a bool tensor or a Python bool."""
    images_ph = tf.placeholder(tf.float32, [None, 8, 8, 1], "images_ph")
    labels_ph = tf.placeholder(tf.int64, [None], "labels_ph")
    dataset = tf.data.Dataset.from_tensor_slices((images_ph, labels_ph)).batch(16)
    iterator = dataset.make_initializable_iterator()
    image, label = iterator.get_next()
    hidden = tf.layers.conv2d(image, 4, 3, padding="same", use_bias=False, name="conv1")
    hidden = tf.layers.batch_normalization(hidden, training=training, name="bn1")
    hidden = tf.layers.flatten(tf.nn.relu(hidden))
    logits = tf.layers.dense(hidden, 3, name="logits")
    loss = tf.losses.sparse_softmax_cross_entropy(label, logits)
    # The moving averages update in training, as the batch norm docs say to.
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train = tf.train.AdamOptimizer(1e-2).minimize(loss)
    return images_ph, labels_ph, logits, train


def batchnorm(folder, rng):
    """Batch norm whose mode is a placeholder of the signature."""
    is_training = tf.placeholder(tf.bool, [], "is_training")
    images_ph, labels_ph, logits, train = convolution(is_training)
    data = dict(zip(("images_ph", "labels_ph"), images(rng, 48)))
    inputs = {"images": images_ph, "labels": labels_ph, "is_training": is_training}
    return made(
        inputs,
        {"logits": logits},
        train,
        data,
        ["images", None],
        scalars={"is_training": False},
        train_feeds={"is_training:0": True},
    )


def frozen_bn(folder, rng):
    """Batch norm built for inference: training=False, a Python bool."""
    images_ph, labels_ph, logits, train = convolution(False)
    data = dict(zip(("images_ph", "labels_ph"), images(rng, 48)))
    inputs = {"images": images_ph, "labels": labels_ph}
    return made(inputs, {"logits": logits}, train, data, ["images", None])


def batch_size(folder, rng):
    """The classic TF1 RNN: batch_size sizes the batches and the zero state; keep_prob."""
    batch_size = tf.placeholder(tf.int64, [], "batch_size")
    keep_prob = tf.placeholder(tf.float32, [], "keep_prob")
    x_ph = tf.placeholder(tf.float32, [None, 7, 3], "x_ph")
    y_ph = tf.placeholder(tf.int64, [None], "y_ph")
    dataset = tf.data.Dataset.from_tensor_slices((x_ph, y_ph)).batch(batch_size)
    iterator = dataset.make_initializable_iterator()
    x, y = iterator.get_next()
    cell = tf.nn.rnn_cell.DropoutWrapper(
        tf.nn.rnn_cell.LSTMCell(6), output_keep_prob=keep_prob, seed=1
    )
    state = cell.zero_state(tf.cast(batch_size, tf.int32), tf.float32)
    outputs, _ = tf.nn.dynamic_rnn(cell, x, initial_state=state)
    logits = tf.layers.dense(outputs[:, -1], 4, name="logits")
    train = tf.train.AdamOptimizer(1e-2).minimize(tf.losses.sparse_softmax_cross_entropy(y, logits))
    data = {
        "x_ph": rng.randn(40, 7, 3).astype(np.float32),
        "y_ph": rng.randint(0, 4, 40).astype(np.int64),
        "batch_size:0": np.int64(20),
    }
    inputs = {"x": x_ph, "y": y_ph, "batch_size": batch_size, "keep_prob": keep_prob}
    return made(
        inputs,
        {"logits": logits},
        train,
        data,
        ["x", None],
        scalars={"batch_size": np.int64(20), "keep_prob": np.float32(1.0)},
        train_feeds={"keep_prob:0": 0.8},
    )


def remainder(folder, rng):
    """Batches of exactly 16: the iterator declares (16, 12)."""
    rows_ph = tf.placeholder(tf.float32, [None, 12], "rows_ph")
    targets_ph = tf.placeholder(tf.float32, [None, 2], "targets_ph")
    dataset = tf.data.Dataset.from_tensor_slices((rows_ph, targets_ph))
    try:
        dataset = dataset.batch(16, drop_remainder=True)
    except TypeError:  # TensorFlow 1.8: the transformation of tf.contrib.data.
        dataset = dataset.apply(tf.contrib.data.batch_and_drop_remainder(16))
    rows, targets = dataset.make_initializable_iterator().get_next()
    hidden = tf.layers.dense(rows, 10, tf.nn.relu, name="hidden")
    predictions = tf.layers.dense(hidden, 2, name="predictions")
    train = tf.train.AdamOptimizer(1e-2).minimize(
        tf.losses.mean_squared_error(targets, predictions)
    )
    data = {"rows_ph": rng.randn(50, 12).astype(np.float32)}
    data["targets_ph"] = rng.randn(50, 2).astype(np.float32)
    inputs = {"rows": rows_ph, "targets": targets_ph}
    return made(inputs, {"predictions": predictions}, train, data, ["rows", None])


def metric(folder, rng):
    """An eval signature: logits and predictions per row, and the batch's accuracy."""
    features_ph = tf.placeholder(tf.float32, [None, 10], "features_ph")
    labels_ph = tf.placeholder(tf.int64, [None], "labels_ph")
    dataset = tf.data.Dataset.from_tensor_slices((features_ph, labels_ph)).batch(40)
    features, labels = dataset.make_initializable_iterator().get_next()
    logits = tf.layers.dense(tf.layers.dense(features, 16, tf.nn.relu), 10, name="logits")
    predictions = tf.argmax(logits, 1, name="predictions")
    accuracy = tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))
    train = tf.train.AdamOptimizer(1e-2).minimize(
        tf.losses.sparse_softmax_cross_entropy(labels, logits)
    )
    data = {
        "features_ph": rng.randn(80, 10).astype(np.float32),
        "labels_ph": rng.randint(0, 10, 80).astype(np.int64),
    }
    outputs = {"logits": logits, "predictions": predictions, "accuracy": accuracy}
    inputs = {"features": features_ph, "labels": labels_ph}
    return made(inputs, outputs, train, data, ["features", "labels"])


def dict_element(folder, rng):
    """A dict element of placeholders never named, and two heads."""
    x_ph = tf.placeholder(tf.float32, [None, 4])
    y_ph = tf.placeholder(tf.float32, [None, 3])
    dataset = tf.data.Dataset.from_tensor_slices({"x": x_ph, "y": y_ph}).batch(10)
    element = dataset.make_initializable_iterator().get_next()
    both = tf.concat([element["x"], tf.layers.dense(element["y"], 4)], 1)
    score = tf.layers.dense(both, 1, name="score")
    kind = tf.layers.dense(both, 3, name="kind")
    train = tf.train.AdamOptimizer(1e-2).minimize(tf.reduce_mean(score * score))
    data = {x_ph.op.name: rng.randn(30, 4).astype(np.float32)}
    data[y_ph.op.name] = rng.randn(30, 3).astype(np.float32)
    outputs = {"score": score, "kind": kind}
    # The dict's components come in the order of its sorted keys.
    return made({"x": x_ph, "y": y_ph}, outputs, train, data, ["x", "y"])


def padded(folder, rng):
    """Token ids padded by padded_batch(), their lengths computed in map()."""
    tokens_ph = tf.placeholder(tf.int32, [None, 9], "tokens_ph")

    def trimmed(tokens):
        length = tf.reduce_sum(tf.cast(tokens > 0, tf.int32))
        return tokens[:length], length

    dataset = tf.data.Dataset.from_tensor_slices(tokens_ph).map(trimmed)
    dataset = dataset.padded_batch(8, padded_shapes=([None], []))
    tokens, lengths = dataset.make_initializable_iterator().get_next()
    embedding = tf.get_variable("embedding", [20, 5])
    sequences = tf.nn.embedding_lookup(embedding, tokens)
    _, state = tf.nn.dynamic_rnn(
        tf.nn.rnn_cell.GRUCell(6), sequences, sequence_length=lengths, dtype=tf.float32
    )
    logits = tf.layers.dense(state, 2, name="logits")
    train = tf.train.AdamOptimizer(1e-2).minimize(tf.reduce_mean(logits * logits))
    lengths_data = rng.randint(2, 10, 24)
    tokens_data = rng.randint(1, 20, (24, 9)).astype(np.int32)
    tokens_data[np.arange(9) >= lengths_data[:, None]] = 0
    # Computed by map(): the upgrade carries the map over, and the new export
    # takes the token rows as they were fed, under the signature's key.
    data = {"tokens_ph": tokens_data}
    rows = {"tokens": tokens_data[:8]}
    return made({"tokens": tokens_ph}, {"logits": logits}, train, data, [None, None], rows=rows)


def tfrecord(folder, rng):
    """TFRecord files, parsed per example; the batch's shape set after get_next()."""
    files = [os.path.join(folder, "part-{}.tfrecord".format(i)) for i in range(2)]
    for number, path in enumerate(files):
        writer = tf.python_io.TFRecordWriter(path)
        for _ in range(12):
            features = {
                "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=rng.randn(16))),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[number])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())
        writer.close()
    filenames_ph = tf.placeholder(tf.string, [None], "filenames_ph")
    spec = {
        "pixels": tf.FixedLenFeature([16], tf.float32),
        "label": tf.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        parsed = tf.parse_single_example(record, spec)
        return parsed["pixels"], parsed["label"]

    dataset = tf.data.TFRecordDataset(filenames_ph).map(parse).batch(8)
    pixels, labels = dataset.make_initializable_iterator().get_next()
    pixels.set_shape([8, 16])  # As code that knew its batch size did.
    logits = tf.layers.dense(tf.layers.dense(pixels, 12, tf.nn.relu), 2, name="logits")
    train = tf.train.AdamOptimizer(1e-2).minimize(
        tf.losses.sparse_softmax_cross_entropy(labels, logits)
    )
    data = {"filenames_ph": np.array(files)}
    return made({"filenames": filenames_ph}, {"logits": logits}, train, data, ["input", None])


def shuffled(folder, rng):
    """A one-shot iterator over a training set held in the graph, shuffled and repeated."""
    pixels = rng.randn(500, 64).astype(np.float32)
    labels = rng.randint(0, 4, 500).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((pixels, labels))
    dataset = dataset.shuffle(500, seed=3).repeat().batch(25)
    features, label = dataset.make_one_shot_iterator().get_next()
    logits = tf.layers.dense(features, 4, name="logits")
    train = tf.train.AdamOptimizer(1e-2).minimize(
        tf.losses.sparse_softmax_cross_entropy(label, logits)
    )
    return made({}, {"logits": logits}, train, {}, ["input", None])


KINDS = {
    "post": post,
    "unnamed": unnamed,
    "feedable": feedable,
    "oneshot": oneshot,
    "batchnorm": batchnorm,
    "frozen_bn": frozen_bn,
    "batch_size": batch_size,
    "remainder": remainder,
    "metric": metric,
    "dict": dict_element,
    "padded": padded,
    "tfrecord": tfrecord,
    "shuffled": shuffled,
}


def through_pipeline(sess, components, outputs, keys, feeds=None):
    """One batch through the pipeline: the components the new export takes, by key, and
    what the model computed from them, by output key."""
    fetched = sess.run({"components": components, "outputs": outputs}, feeds)
    inputs = {key: value for key, value in zip(keys, fetched["components"]) if key}
    return inputs, fetched["outputs"]


def save_npz(folder, inputs, expected, name="expected"):
    np.savez(os.path.join(folder, "inputs.npz"), **inputs)
    np.savez(os.path.join(folder, name + ".npz"), **expected)


def post_trained(folder, rng, left):
    """The post's graph, trained two steps through its iterator; left(sess, logits) writes what
    training leaves, and names the input (the placeholder's key, or "input" if that is gone).

    Returns what the new export takes and gives for a batch, keyed as the upgrade
    names them: the loss reads dense/BiasAdd:0.
    """
    built = post(folder, rng)
    feeds = {tensor_name(name): value for name, value in built["data"].items()}
    get_next = tf.get_default_graph().get_operation_by_name("IteratorGetNext").outputs
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run("dataset_init", feeds)
        for _ in range(2):
            sess.run(built["train"])
        key = left(sess, built["outputs"]["logits"])
        sess.run("dataset_init", feeds)
        return through_pipeline(sess, get_next, {"dense": built["outputs"]["logits"]}, [key, None])


def saver(folder, rng):
    """The post's graph saved by tf.train.Saver with its global step: train/model.ckpt-2."""

    def save(sess, logits):
        tf.train.Saver().save(sess, os.path.join(folder, "train", "model.ckpt"), global_step=2)
        return "features_data_ph"

    return post_trained(folder, rng, save)


def frozen(folder, rng):
    """The post's graph frozen at its logits, written as binary and as text."""

    def freeze(sess, logits):
        graph_def = tf.graph_util.convert_variables_to_constants(
            sess, tf.get_default_graph().as_graph_def(), [logits.op.name]
        )
        tf.train.write_graph(graph_def, folder, "frozen.pb", as_text=False)
        tf.train.write_graph(graph_def, folder, "frozen.pbtxt", as_text=True)
        return "input"  # A frozen graph keeps no dataset: its input is named so.

    return post_trained(folder, rng, freeze)


RECORD = 1 + 6 * 6  # A label byte, then 6 x 6 pixels of one byte.


def queue(folder, rng):
    """The cifar10 tutorial's way, small: records read by queue runners, shuffled into batches."""
    files = [os.path.join(folder, "data_{}.bin".format(i)) for i in range(2)]
    for path in files:
        labels = rng.randint(0, 3, (40, 1))
        pixels = rng.randint(0, 256, (40, RECORD - 1))
        with open(path, "wb") as f:
            f.write(np.concatenate([labels, pixels], 1).astype(np.uint8).tobytes())
    producer = tf.train.string_input_producer(files, seed=1)
    _, value = tf.FixedLengthRecordReader(record_bytes=RECORD).read(producer)
    record = tf.decode_raw(value, tf.uint8)
    label = tf.cast(tf.reshape(tf.strided_slice(record, [0], [1]), []), tf.int32)
    image = tf.cast(tf.reshape(tf.strided_slice(record, [1], [RECORD]), [6, 6, 1]), tf.float32)
    image = tf.image.random_flip_left_right(image / 255.0, seed=2)
    images, labels = tf.train.shuffle_batch(
        [image, label], batch_size=16, capacity=64, min_after_dequeue=16, num_threads=2, seed=3
    )
    global_step = tf.train.get_or_create_global_step()
    hidden = tf.layers.conv2d(images, 4, 3, padding="same", activation=tf.nn.relu, name="conv")
    hidden = tf.reshape(hidden, [16, -1])  # As cifar10 did: the batch size baked in.
    logits = tf.layers.dense(tf.layers.dense(hidden, 8, tf.nn.relu, name="local"), 3, name="logits")
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    step = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step)
    averages = tf.train.ExponentialMovingAverage(0.5, global_step)
    with tf.control_dependencies([step]):
        train = averages.apply(tf.trainable_variables())
    take_averages = [v.assign(averages.average(v)) for v in tf.trainable_variables()]
    restore = tf.train.Saver()
    train_dir = os.path.join(folder, "train")
    with tf.train.MonitoredTrainingSession(
        checkpoint_dir=train_dir, save_summaries_steps=None
    ) as sess:
        for _ in range(3):
            sess.run(train)
        inputs, expected = through_pipeline(
            sess, [images, labels], {"logits": logits}, ["input", None]
        )
    tf.summary.FileWriterCache.clear()  # Its events file, written now rather than later.
    # The same batch through the model with the moving averages for weights.
    with tf.Session() as sess:
        restore.restore(sess, tf.train.latest_checkpoint(train_dir))
        sess.run(take_averages)
        with_averages = sess.run({"logits": logits}, {images: inputs["input"]})
    np.savez(os.path.join(folder, "expected_averages.npz"), **with_averages)
    return inputs, expected


def estimator(folder, rng):
    """A canned Estimator's graph, built by hand (TensorFlow 2.16 and later have no tf.estimator)."""
    x = rng.randn(60, 4).astype(np.float32)
    z = rng.randn(60, 2).astype(np.float32)
    y = rng.randint(0, 3, 60).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices(({"x": x, "z": z}, y)).repeat().batch(12)
    iterator = dataset.make_initializable_iterator()
    features, labels = iterator.get_next()
    global_step = tf.train.get_or_create_global_step()
    columns = [
        tf.feature_column.numeric_column("x", [4]),
        tf.feature_column.numeric_column("z", [2]),
    ]
    with tf.variable_scope("dnn", partitioner=tf.fixed_size_partitioner(2)):
        with tf.variable_scope("input_from_feature_columns"):
            net = tf.feature_column.input_layer(features, columns)
        hidden = tf.layers.dense(net, 8, tf.nn.relu, name="hiddenlayer_0")
        logits = tf.layers.dense(hidden, 3, name="logits")
    with tf.name_scope("head"):
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        with tf.name_scope("predictions"):
            probabilities = tf.nn.softmax(logits, name="probabilities")
            class_ids = tf.expand_dims(tf.argmax(logits, 1, name="class_ids"), -1)
    tf.summary.scalar("loss", loss)
    train = tf.train.AdagradOptimizer(0.05).minimize(loss, global_step)
    model_dir = os.path.join(folder, "model_dir")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run([tf.global_variables_initializer(), iterator.initializer])
        for _ in range(3):
            sess.run(train)
            saver.save(sess, os.path.join(model_dir, "model.ckpt"), global_step=global_step)
        sess.run(iterator.initializer)
        outputs = {"logits": logits, "probabilities": probabilities, "class_ids": class_ids}
        # The dict's components come in the order of its sorted keys, then the labels.
        components = [features["x"], features["z"], labels]
        return through_pipeline(sess, components, outputs, ["x", "z", None])


# What TF1 training left, by kind: what it writes, and OLD, the path to upgrade.
LEFT = {
    "saver": (saver, "train/model.ckpt-2"),
    "queue": (queue, "train"),
    "estimator": (estimator, "model_dir"),
    "frozen": (frozen, "frozen.pb"),
}


def start(sess, graph, feeds):
    """Starts the iterator of an export, as its maker would; returns the run's feeds."""
    if graph.get_collection("train_init"):  # A feedable iterator: the training one's handle.
        sess.run(graph.get_collection("train_init"), feeds)
        return {"handle_ph:0": sess.run(graph.get_collection("train_handle")[0])}
    # Named or not, every initializer is a MakeIterator op; a one-shot iterator has none.
    sess.run([op for op in graph.get_operations() if op.type == "MakeIterator"], feeds)
    return {}


def tensor_name(name):
    return name if ":" in name else name + ":0"


def main(kind, folder):
    if not os.path.isdir(folder):
        os.makedirs(folder)
    rng = np.random.RandomState(0)
    if kind in LEFT:
        with tf.Graph().as_default():
            tf.set_random_seed(0)
            save_npz(folder, *LEFT[kind][0](folder, rng))
        return
    export = os.path.join(folder, "export")
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        tf.set_random_seed(0)
        built = KINDS[kind](folder, rng)
        feeds = {tensor_name(name): value for name, value in built["data"].items()}
        sess.run(tf.global_variables_initializer())
        if built["train"] is not None:
            run_feeds = start(sess, graph, feeds)
            for key, value in built["scalars"].items():
                run_feeds[built["inputs"][key]] = value
            run_feeds.update(built["train_feeds"])
            for _ in range(2):  # Optimizer slots and moving averages move, as in a real export.
                sess.run(built["train"], run_feeds)
        info = tf.saved_model.utils.build_tensor_info
        signature = tf.saved_model.signature_def_utils.build_signature_def(
            inputs={key: info(tensor) for key, tensor in built["inputs"].items()},
            outputs={key: info(tensor) for key, tensor in built["outputs"].items()},
            method_name="tensorflow/serving/predict",
        )
        builder = tf.saved_model.builder.SavedModelBuilder(export)
        builder.add_meta_graph_and_variables(
            sess, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()
    # What the export computes through its own iterator, loaded afresh, and
    # the components of the batch it computed that from.
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], export)
        signature = meta.signature_def["serving_default"]
        run_feeds = start(sess, graph, feeds)
        for key, value in built["scalars"].items():
            run_feeds[signature.inputs[key].name] = value
        (get_next,) = [op for op in graph.get_operations() if op.type.startswith("IteratorGetNext")]
        fetches = {key: info.name for key, info in signature.outputs.items()}
        fetches["components"] = list(get_next.outputs)
        expected = sess.run(fetches, run_feeds)
    components = expected.pop("components")
    inputs = {key: value for key, value in zip(built["keys"], components) if key}
    inputs.update(built["scalars"])
    inputs.update(built["rows"])
    np.savez(os.path.join(folder, "inputs.npz"), **inputs)
    np.savez(os.path.join(folder, "expected.npz"), **expected)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in list(KINDS) + list(LEFT):
        kinds = ",".join(sorted(list(KINDS) + list(LEFT)))
        sys.exit("usage: python3 old_exports.py {{{}}} FOLDER".format(kinds))
    main(*sys.argv[1:])
