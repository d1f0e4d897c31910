"""Serves new_export/, the upgraded export, from TF2 code and as a Keras 3 layer.

Usage: python3 examples/use_new_export.py, in the folder that holds new_export/.
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
if not os.path.isfile("new_export/saved_model.pb"):
    sys.exit("No new_export/ here: run examples/upgrade_export.py old_export new_export first.")

import keras
import numpy as np
import tensorflow as tf

np.random.seed(0)
x = np.random.randn(64, 10, 30)[:3].astype(np.float32)  # The first three sequences.

# TF2 code: the signature, called with its one input.
serve = tf.saved_model.load("new_export").signatures["serving_default"]
print(serve(features_data_ph=tf.constant(x))["logits"].numpy())

# Keras 3: the export as a layer.
layer = keras.layers.TFSMLayer("new_export", call_endpoint="serving_default")
print(keras.ops.convert_to_numpy(layer(x)["logits"]))
