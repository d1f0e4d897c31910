"""Calls simple/, the tutorial's TF1 export, from TF2 code: its signature, and a pruned function.

Usage: python3 examples/tf2_predict.py, in the folder that holds simple/.
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
import tensorflow as tf

loaded = tf.saved_model.load("simple")
features = np.random.RandomState(1).randn(3, 10, 30).astype(np.float32)

# 1. The signature. A TF1 signature has no default values, so TF2 wants all
# four inputs: the iterator's three get placeholder values, as with TF Serving.
serve = loaded.signatures["serving_default"]
outputs = serve(
    features=tf.constant(features),
    batch_size_ph=tf.constant(1, tf.int64),
    features_data_ph=tf.zeros([0, 10, 30]),
    labels_data_ph=tf.zeros([0, 5], tf.int32),
)
print(outputs["logits"].numpy())

# 2. A function of the features alone, cut out of the TF1 graph by tensor names.
predict = loaded.prune("features:0", "dense/BiasAdd:0")
print(predict(tf.constant(features)).numpy())
