"""A TF1 model of the common kind, with random weights: writes lstm_ckpt/ and what it computes.

Usage: python3 examples/make_tf1_lstm.py: writes lstm_ckpt/ in the folder it runs in.
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

# What it writes, checked before TensorFlow's import, which takes seconds.
if os.path.lexists("lstm_ckpt"):
    sys.exit("lstm_ckpt already exists here: this program never replaces it.")
if not os.access(".", os.W_OK):
    sys.exit(
        "Cannot write in {}: run this program in a folder you can write to.".format(os.getcwd())
    )

import numpy as np

# TensorFlow 2.16 and later keep the TF1 cells in tf-keras, used only with this set first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
try:
    import tensorflow.compat.v1 as tf
except ImportError:  # TensorFlow 1.x before 1.13.
    import tensorflow as tf
# The TF1 API is deprecated: quiet its notices, as the tutorial does.
tf.logging.set_verbosity(tf.logging.ERROR)
warnings.filterwarnings("ignore", r"`tf\.(nn\.rnn_cell|layers)\.", UserWarning)
if hasattr(tf, "disable_v2_behavior"):
    tf.disable_v2_behavior()

FEATURES, UNITS, CLASSES = 4, 5, 3

# Six sequences of 1 to 7 steps, padded with zeros to 7.
rng = np.random.RandomState(0)
lengths = np.array([7, 3, 1, 5, 7, 2], np.int32)
features = rng.randn(len(lengths), 7, FEATURES).astype(np.float32)
features[np.arange(7) >= lengths[:, None]] = 0.0

with tf.Graph().as_default(), tf.Session() as sess:
    inputs = tf.placeholder(tf.float32, [None, None, FEATURES])
    sequence_length = tf.placeholder(tf.int32, [None])
    # Forward: a stack of two LSTMCells; backward: a BasicLSTMCell with its own forget_bias.
    cells_fw = [tf.nn.rnn_cell.LSTMCell(UNITS), tf.nn.rnn_cell.LSTMCell(UNITS)]
    cell_bw = tf.nn.rnn_cell.BasicLSTMCell(UNITS, forget_bias=0.5)
    (out_fw, out_bw), _ = tf.nn.bidirectional_dynamic_rnn(
        tf.nn.rnn_cell.MultiRNNCell(cells_fw),
        cell_bw,
        inputs,
        sequence_length=sequence_length,
        dtype=tf.float32,
    )
    # Past a sequence's end, dynamic_rnn's outputs are zeros; the mean counts them.
    mean = tf.reduce_mean(tf.concat([out_fw, out_bw], 2), axis=1)
    logits = tf.layers.dense(mean, CLASSES)
    # Every weight and bias at random, so that no layout mistake can hide behind a zero.
    for variable in tf.global_variables():
        shape = variable.shape.as_list()
        sess.run(variable.assign(rng.randn(*shape).astype(np.float32) * 0.5))
    expected = sess.run(logits, {inputs: features, sequence_length: lengths})
    tf.train.Saver().save(sess, "lstm_ckpt/model.ckpt")
np.savez("lstm_ckpt/batch.npz", features=features, lengths=lengths, expected=expected)
print("Wrote lstm_ckpt/ and lstm_ckpt/batch.npz")
