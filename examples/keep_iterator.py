"""Load old_export/, find its iterator's initializer by type, and run it.

Usage: python3 examples/keep_iterator.py, in the folder that holds old_export/.
"""

import os
import sys

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# Before TensorFlow's import, which takes seconds.
if not os.path.isfile("old_export/saved_model.pb"):
    sys.exit("No old_export/ here: run examples/make_2018_export.py in this folder first.")

import numpy as np
import tensorflow as tf

np.random.seed(0)  # The data make_2018_export.py trained on.
features = np.random.randn(64, 10, 30)
labels = np.eye(5)[np.random.randint(0, 5, (64,))]

tf.get_logger().setLevel("ERROR")  # TF1 code here: no notice that loader.load is.
with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], "old_export")
    # Named or not, an iterator's initializer is an op of type MakeIterator.
    initializers = [op for op in graph.get_operations() if op.type == "MakeIterator"]
    print("initializers:", [op.name for op in initializers])
    feed = {"features_data_ph:0": features, "labels_data_ph:0": labels, "batch_size_ph:0": 32}
    sess.run(initializers[0], feed)
    logits = meta.signature_def["serving_default"].outputs["logits"].name
    print(sess.run(logits)[:3])
