"""Restores simple/ in a fresh graph, runs its own iterator, and prints the final inference.

Usage: python3 examples/restore_simple.py, in the folder that holds simple/.
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
if not os.path.isfile("simple/saved_model.pb"):
    sys.exit("No export in simple/ here: run python3 save_and_restore.py in this folder first.")

import numpy as np
import tensorflow.compat.v1 as tf  # On TensorFlow 1.x: import tensorflow as tf

# The script's data: the same seed and the same draws, in the same order.
rng = np.random.RandomState(0)
features = rng.randn(64, 10, 30).astype(np.float32)
labels = np.eye(5)[rng.randint(0, 5, 64)].astype(np.int32)

with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
    meta_graph = tf.saved_model.loader.load(sess, ["serve"], "simple")
    signature = meta_graph.signature_def["serving_default"]
    inputs = {key: graph.get_tensor_by_name(info.name) for key, info in signature.inputs.items()}
    logits = graph.get_tensor_by_name(signature.outputs["logits"].name)
    # Initialize the *restored* iterator, found by its name.
    init_op = graph.get_operation_by_name("dataset_init")
    sess.run(
        init_op,
        feed_dict={
            inputs["features_data_ph"]: features,
            inputs["labels_data_ph"]: labels,
            inputs["batch_size_ph"]: 32,
        },
    )
    while True:
        try:
            print(sess.run(logits)[0])
        except tf.errors.OutOfRangeError:
            break
