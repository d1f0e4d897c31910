"""Wraps simple/, the tutorial's TF1 export, in a Keras 3 layer of its own.

Usage: python3 examples/keras_layer.py, in the folder that holds simple/.
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

import keras
import numpy as np
import tensorflow as tf


class Classifier(keras.layers.Layer):
    """The export as a Keras 3 layer: sequences in, logits out (inference only)."""

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.loaded = tf.saved_model.load(path)  # Keeps the variables alive.
        self.predict = self.loaded.prune("features:0", "dense/BiasAdd:0")

    def call(self, features):
        return self.predict(features)


features = np.random.RandomState(1).randn(3, 10, 30).astype(np.float32)
inputs = keras.Input((10, 30))
model = keras.Model(inputs, Classifier("simple")(inputs))
print(model.predict(features, verbose=0))
