"""Runs the tutorial's export, converted to ONNX, in ONNX Runtime, and checks its logits.

Usage: python3 examples/run_onnx.py, in the folder that holds simple/ and simple.onnx.
"""

import os
import sys

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# What it reads, checked before ONNX Runtime's import, which takes a second.
if not os.path.isfile("simple/assets.extra/expected_logits.npy"):
    sys.exit("No export in simple/ here: run python3 save_and_restore.py in this folder first.")
if not os.path.isfile("simple.onnx"):
    sys.exit(
        "No simple.onnx here: run python3 -m tf2onnx.convert --saved-model simple "
        "--inputs features:0 --outputs dense/BiasAdd:0 --output simple.onnx"
    )

import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession("simple.onnx")
# The tutorial's data; the model's input `features` takes any number of sequences.
features = np.random.RandomState(0).randn(64, 10, 30).astype(np.float32)
(logits,) = session.run(["dense/BiasAdd:0"], {"features:0": features})
expected = np.load("simple/assets.extra/expected_logits.npy")
difference = np.abs(logits - expected).max()
print(f"Largest difference from the TF1 export's logits: {difference:.1e}")
sys.exit(1 if difference > 1e-6 else 0)
