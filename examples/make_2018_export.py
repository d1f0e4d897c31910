"""Write old_export/, a model exported the way the 2018 post did: to try the upgrade on.

Usage: python3 examples/make_2018_export.py: writes old_export/ in the folder it runs in.
"""

import os
import sys
import warnings

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# What it writes, checked before TensorFlow's import, which takes seconds.
if os.path.lexists("old_export"):
    sys.exit("old_export already exists here: run this in a folder without it.")
if not os.access(".", os.W_OK):
    sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # The TF1 layers are in tf-keras.
import numpy as np
import tensorflow.compat.v1 as tf

tf.logging.set_verbosity(tf.logging.ERROR)
warnings.filterwarnings("ignore", r"`tf\.", UserWarning)  # "... is deprecated"
tf.disable_v2_behavior()
np.random.seed(0)
features = np.random.randn(64, 10, 30)
labels = np.eye(5)[np.random.randint(0, 5, (64,))]
tf.set_random_seed(0)

batch_size_ph = tf.placeholder(tf.int64, name="batch_size_ph")
features_data_ph = tf.placeholder(tf.float32, [None, None, 30], "features_data_ph")
labels_data_ph = tf.placeholder(tf.int32, [None, 5], "labels_data_ph")
dataset = tf.data.Dataset.from_tensor_slices((features_data_ph, labels_data_ph))
dataset = dataset.batch(batch_size_ph)
iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
dataset_init_op = iterator.make_initializer(dataset, name="dataset_init")
input_tensor, labels_tensor = iterator.get_next()

# The post's model, its defects kept: one GRU cell for both directions, and
# sequence lengths for batches of exactly 32.
cell = tf.nn.rnn_cell.GRUCell(10)
(fw_outputs, bw_outputs), _ = tf.nn.bidirectional_dynamic_rnn(
    cell, cell, input_tensor, sequence_length=[10] * 32, dtype=tf.float32, swap_memory=True
)
mean = tf.reduce_mean(tf.concat((fw_outputs, bw_outputs), 2), axis=1)
logits = tf.layers.dense(mean, 5, activation=None)
xent = tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits, labels=labels_tensor)
opt_op = tf.train.AdamOptimizer(1e-2).minimize(tf.reduce_mean(xent))

with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    feed = {features_data_ph: features, labels_data_ph: labels, batch_size_ph: 32}
    sess.run(dataset_init_op, feed)
    sess.run(opt_op)  # One step of training, so the export holds Adam's slots too.
    sess.run(dataset_init_op, feed)
    first = sess.run(logits)
    inputs = {
        "batch_size_ph": batch_size_ph,
        "features_data_ph": features_data_ph,
        "labels_data_ph": labels_data_ph,
    }
    tf.saved_model.simple_save(sess, "old_export", inputs, {"logits": logits})
print("Wrote old_export/. Its logits for the first three sequences, through its iterator:")
print(first[:3])
