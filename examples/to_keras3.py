"""Moves the tutorial's model from its TF1 export into Keras 3, and checks it gives the same logits.

Usage: python3 examples/to_keras3.py, in the folder that holds simple/. Writes
simple_keras3/ and simple.keras.
"""

import os
import sys

if __name__ == "__main__":
    # --help, or an argument it does not take: answered before anything is imported.
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit()
    if sys.argv[1:]:
        sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")
    # What it reads and writes, checked before TensorFlow's import, which takes seconds.
    if not os.path.isfile("simple/saved_model.pb"):
        sys.exit("No export in simple/ here: run python3 save_and_restore.py in this folder first.")
    for output in ("simple_keras3", "simple.keras"):
        if os.path.lexists(output):
            sys.exit(f"{output} already exists here: this program never replaces it.")
    if not os.access(".", os.W_OK):
        sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")
try:
    from tf1_cells import keras_rnn_weights  # Beside this file.
except ModuleNotFoundError:
    sys.exit("No tf1_cells.py beside to_keras3.py: copy it from examples/ too.")

import keras
import numpy as np
import tensorflow as tf

UNITS, FEATURES, CLASSES = 10, 30, 5


def build_model(steps=None, unroll=False):
    """The tutorial's model in Keras 3: a bidirectional GRU, its mean over time, a dense layer."""
    features = keras.Input((steps, FEATURES), name="features")
    # reset_after=False is TF1's GRUCell formula: the reset gate applies to the
    # state before the candidate's kernel. Keras's default, True, is cuDNN's.
    gru = keras.layers.GRU(UNITS, return_sequences=True, reset_after=False, unroll=unroll)
    sequences = keras.layers.Bidirectional(gru)(features)
    mean = keras.layers.GlobalAveragePooling1D()(sequences)
    return keras.Model(features, keras.layers.Dense(CLASSES)(mean))


def keras_weights(read):
    """The Keras model's weights, in order, from TF1 variables: read(name) returns each."""
    weights = []
    for direction in ("fw", "bw"):
        # The columns reordered, the kernel split in two: see tf1_cells.py.
        scope = f"bidirectional_rnn/{direction}/gru_cell"
        weights += keras_rnn_weights(read, scope, "GRUCell")
    return weights + [read("dense/kernel"), read("dense/bias")]


if __name__ == "__main__":
    # Any TF1 checkpoint of the tutorial's graph: an export's variables, as
    # here, or a --checkpoint-dir checkpoint (tf.train.load_checkpoint("ckpt")).
    tf1 = tf.train.load_checkpoint("simple/variables/variables")
    model = build_model()
    model.set_weights(keras_weights(tf1.get_tensor))

    # The tutorial's data, and the TF1 model's final inference on it.
    features = np.random.RandomState(0).randn(64, 10, 30).astype(np.float32)
    expected = np.load("simple/assets.extra/expected_logits.npy")
    difference = np.abs(model.predict(features, verbose=0) - expected).max()
    print(f"Largest difference from the TF1 export's logits: {difference:.1e}")
    if difference > 1e-6:
        sys.exit(1)
    model.export("simple_keras3", verbose=False)  # A SavedModel with a `serve` endpoint.
    model.save("simple.keras")
    print("Wrote simple_keras3/ and simple.keras")
