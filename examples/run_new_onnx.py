"""Runs new_export.onnx, the upgraded export converted to ONNX, in ONNX Runtime.

Usage: python3 examples/run_new_onnx.py, in the folder that holds new_export.onnx.
"""

import os
import sys

# --help, or an argument it does not take: answered before the imports, which take seconds.
if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__)
    sys.exit()
if sys.argv[1:]:
    sys.exit(f"usage: python3 {sys.argv[0]}: it takes no arguments (--help says more)")

# Before ONNX Runtime's import, which takes a second.
if not os.path.isfile("new_export.onnx"):
    sys.exit(
        "No new_export.onnx here: run python3 -m tf2onnx.convert "
        "--saved-model new_export --output new_export.onnx first."
    )

import numpy as np
import onnxruntime

np.random.seed(0)
x = np.random.randn(64, 10, 30)[:3].astype(np.float32)  # The first three sequences.
session = onnxruntime.InferenceSession("new_export.onnx")
print(session.run(["logits"], {"features_data_ph": x})[0])
