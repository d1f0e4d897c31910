"""Moves the TF1 model of make_tf1_lstm.py into Keras 3, and shows what each shortcut costs.

Usage: python3 examples/lstm_to_keras3.py, where examples/make_tf1_lstm.py ran.
Reads lstm_ckpt/; writes lstm.keras.
"""

import os
import sys

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# What it reads and writes, checked before TensorFlow's import, which takes seconds.
if not os.path.isfile("lstm_ckpt/batch.npz"):
    sys.exit("No lstm_ckpt/ here: run examples/make_tf1_lstm.py in this folder first.")
if os.path.lexists("lstm.keras"):
    sys.exit("lstm.keras already exists here: this program never replaces it.")
if not os.access(".", os.W_OK):
    sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")
try:
    from tf1_cells import keras_rnn_weights  # Beside this file.
except ModuleNotFoundError:
    sys.exit("No tf1_cells.py beside lstm_to_keras3.py: copy it from examples/ too.")

import keras
import numpy as np
import tensorflow as tf

FEATURES, UNITS, CLASSES = 4, 5, 3
read = tf.train.load_checkpoint("lstm_ckpt/model.ckpt").get_tensor
batch = np.load("lstm_ckpt/batch.npz")
features, lengths, expected = batch["features"], batch["lengths"], batch["expected"]
real_steps = np.arange(features.shape[1]) < lengths[:, None]  # False where padded.


def build(forget_bias=True, masked=True, zeroed=True):
    """The TF1 model in Keras 3, with its weights; the flags take the shortcuts."""
    inputs = keras.Input((None, FEATURES))
    real = keras.Input((None,), dtype="bool")
    mask = real if masked else None
    fw_0, fw_1 = [keras.layers.LSTM(UNITS, return_sequences=True) for _ in range(2)]
    bw = keras.layers.LSTM(UNITS, return_sequences=True, go_backwards=True)
    dense = keras.layers.Dense(CLASSES)
    # With a mask, an LSTM keeps its state over the padded steps: its last state
    # is the one at each sequence's last real step, as with sequence_length.
    forward = fw_1(fw_0(inputs, mask=mask), mask=mask)
    # From each sequence's own end backwards, then turned back in time, as TF1 does.
    backward = keras.ops.flip(bw(inputs, mask=mask), axis=1)
    sequences = keras.ops.concatenate([forward, backward], axis=-1)
    if zeroed:  # TF1's outputs past a sequence's end are zeros; Keras's are not.
        sequences = sequences * keras.ops.expand_dims(keras.ops.cast(real, "float32"), -1)
    # The mean over every step, padded ones included, as tf.reduce_mean takes it
    # (GlobalAveragePooling1D with a mask would average the real steps only).
    model = keras.Model([inputs, real], dense(keras.ops.mean(sequences, axis=1)))
    # The forget biases the TF1 cells were built with: LSTMCell's default, 1.0, and 0.5.
    fw_bias, bw_bias = (1.0, 0.5) if forget_bias else (0.0, 0.0)
    stack = "bidirectional_rnn/fw/multi_rnn_cell/cell_{}/lstm_cell"
    fw_0.set_weights(keras_rnn_weights(read, stack.format(0), "LSTMCell", fw_bias))
    fw_1.set_weights(keras_rnn_weights(read, stack.format(1), "LSTMCell", fw_bias))
    backward_cell = "bidirectional_rnn/bw/basic_lstm_cell"
    bw.set_weights(keras_rnn_weights(read, backward_cell, "BasicLSTMCell", bw_bias))
    dense.set_weights([read("dense/kernel"), read("dense/bias")])
    return model


def largest_difference(model):
    return np.abs(model.predict([features, real_steps], verbose=0) - expected).max()


model = build()
difference = largest_difference(model)
print(f"Largest difference from the TF1 model's logits: {difference:.1e}")
for shortcut, flags in [
    ("forget_bias left out", {"forget_bias": False}),
    ("padded steps not zeroed", {"zeroed": False}),
    ("no mask", {"masked": False}),
]:
    print(f"  {shortcut}: {largest_difference(build(**flags)):.3f} off")
if difference > 1e-6:
    sys.exit(1)
model.save("lstm.keras")
print("Wrote lstm.keras")
