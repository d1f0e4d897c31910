"""Finishes a TF1 training run of the tutorial in Keras 3, from its --checkpoint-dir checkpoint.

Usage: python3 examples/finish_in_keras3.py, where `python3 save_and_restore.py
--checkpoint-dir ckpt --max-steps 3` ran. Reads ckpt/; writes ckpt_keras3/ and
finished.keras.
"""

import os
import sys

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

NO_CHECKPOINT = (
    "No checkpoint in ckpt/ here: run python3 save_and_restore.py --checkpoint-dir ckpt "
    "--max-steps 3 in this folder first."
)
# What it reads and writes, checked before TensorFlow's import, which takes seconds.
if not os.path.isfile("ckpt/checkpoint"):
    sys.exit(NO_CHECKPOINT)
if os.path.lexists("finished.keras"):
    sys.exit("finished.keras already exists here: this run is finished, and it is never replaced.")
if not os.access(".", os.W_OK):
    sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")
try:
    from to_keras3 import build_model, keras_weights  # Beside this file.
except ModuleNotFoundError:
    sys.exit("No to_keras3.py beside finish_in_keras3.py: copy it from examples/ too.")

import keras
import numpy as np
import tensorflow as tf

EPOCHS, BATCH_SIZE, STEPS_PER_EPOCH = 2, 32, 2
TRAIN_STEPS = EPOCHS * STEPS_PER_EPOCH

# The tutorial's data: the same seed and the same draws, in the same order.
rng = np.random.RandomState(0)
features = rng.randn(64, 10, 30).astype(np.float32)
labels = np.eye(5)[rng.randint(0, 5, 64)].astype(np.float32)

# The TF1 run's latest checkpoint: its weights, Adam's two moments, its step.
try:
    tf1_path = tf.train.latest_checkpoint("ckpt")
except ValueError:  # A ckpt/checkpoint file that names no checkpoint.
    tf1_path = None
if tf1_path is None:
    sys.exit(NO_CHECKPOINT)
tf1 = tf.train.load_checkpoint(tf1_path)
if not {"global_step", "dense/kernel"} <= set(tf1.get_variable_to_shape_map()):
    sys.exit(f"{tf1_path} is not a checkpoint of the tutorial's model: it cannot be finished here.")
tf1_step = int(tf1.get_tensor("global_step"))
if tf1_step >= TRAIN_STEPS:
    sys.exit(f"{tf1_path} is at step {tf1_step}, the end of training: nothing is left to finish.")
model = build_model()
model.set_weights(keras_weights(tf1.get_tensor))
# TF1's Adam has epsilon 1e-8; Keras's default, 1e-7, trains another model.
optimizer = keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-8)
optimizer.build(model.trainable_variables)
# The step sets Adam's bias correction; the moments are named like their variables.
optimizer.iterations.assign(tf1_step)
momentums = keras_weights(lambda name: tf1.get_tensor(f"optimizer/{name}/Adam"))
velocities = keras_weights(lambda name: tf1.get_tensor(f"optimizer/{name}/Adam_1"))
slots = {slot.name: slot for slot in optimizer.variables}
for variable, momentum, velocity in zip(model.trainable_variables, momentums, velocities):
    name = variable.path.replace("/", "_")
    slots[name + "_momentum"].assign(momentum)
    slots[name + "_velocity"].assign(velocity)
model.compile(optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True))

# The batches the TF1 run had not read: its position, recomputed from its step
# (the TF1 iterator's own saved state is not carried over). A --shuffle run
# saved none: it read each epoch in the order of the epoch's seed.
shuffled = not any("Iterator" in name for name in tf1.get_variable_to_shape_map())
tf.random.set_seed(0)  # The TF1 graph's seed: with it, TF2 shuffles in the same orders.


def epoch_batches(epoch):
    data = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffled:
        data = data.shuffle(len(features), seed=epoch)
    return data.batch(BATCH_SIZE)


dataset = epoch_batches(0)
for epoch in range(1, EPOCHS):
    dataset = dataset.concatenate(epoch_batches(epoch))
iterator = iter(dataset.skip(tf1_step))

# From here on, TF2-native checkpoints: the model, Adam, and the iterator's position.
checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, iterator=iterator)
manager = tf.train.CheckpointManager(checkpoint, "ckpt_keras3", max_to_keep=2)
if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    print(f"Resumed from {manager.latest_checkpoint}")
else:
    print(f"Moved {tf1_path} into Keras 3 at step {tf1_step}")

step = int(optimizer.iterations)
while step < TRAIN_STEPS:
    epoch, batch = divmod(step, STEPS_PER_EPOCH)
    batch_features, batch_labels = next(iterator)
    # As the TF1 script prints: the logits of the step's own forward pass.
    value = model(batch_features).numpy()[0]
    model.train_on_batch(batch_features, batch_labels)
    print(f"Epoch {epoch}, batch {batch} | Sample value: {value}")
    step = int(optimizer.iterations)
    manager.save(checkpoint_number=step)

for batch, start in enumerate(range(0, len(features), BATCH_SIZE)):
    value = model(features[start : start + BATCH_SIZE]).numpy()[0]
    print(f"Epoch {EPOCHS}, batch {batch} | Final inference | Sample value: {value}")
model.save("finished.keras")
