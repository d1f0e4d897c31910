"""Runs the tutorial's model, unrolled, in LiteRT (TFLite), and checks its logits.

Usage: python3 examples/run_litert.py, where examples/to_keras3.py ran. Reads simple/
and simple.keras; writes simple.tflite.
"""

import importlib.util
import os
import sys
import tempfile

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# What it reads and writes, checked before TensorFlow's import, which takes seconds.
if not os.path.isfile("simple/assets.extra/expected_logits.npy"):
    sys.exit("No export in simple/ here: run python3 save_and_restore.py in this folder first.")
if not os.path.isfile("simple.keras"):
    sys.exit("No simple.keras here: run examples/to_keras3.py in this folder first.")
if os.path.lexists("simple.tflite"):
    sys.exit("simple.tflite already exists here: this program never replaces it.")
if not os.access(".", os.W_OK):
    sys.exit(f"Cannot write in {os.getcwd()}: run this program in a folder you can write to.")
try:
    from to_keras3 import build_model  # Beside this file.
except ModuleNotFoundError:
    sys.exit("No to_keras3.py beside run_litert.py: copy it from examples/ too.")
if importlib.util.find_spec("ai_edge_litert") is None:
    sys.exit("No LiteRT here: pip install ai-edge-litert==2.3.0 first.")

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

# LiteRT's built-in ops have no loop for a GRU over a sequence of any length:
# unrolled over a fixed 10 steps, the model is plain matrix arithmetic.
model = build_model(steps=10, unroll=True)
model.set_weights(keras.models.load_model("simple.keras").get_weights())
with tempfile.TemporaryDirectory() as saved_model:
    model.export(saved_model, verbose=False)
    converted = tf.lite.TFLiteConverter.from_saved_model(saved_model).convert()
with open("simple.tflite", "wb") as file:
    file.write(converted)

interpreter = Interpreter(model_path="simple.tflite")
features = np.random.RandomState(0).randn(64, 10, 30).astype(np.float32)
(input_detail,) = interpreter.get_input_details()
interpreter.resize_tensor_input(input_detail["index"], features.shape)
interpreter.allocate_tensors()
interpreter.set_tensor(input_detail["index"], features)
interpreter.invoke()
logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
expected = np.load("simple/assets.extra/expected_logits.npy")
difference = np.abs(logits - expected).max()
print(f"Largest difference from the TF1 export's logits: {difference:.1e}")
sys.exit(1 if difference > 1e-6 else 0)
