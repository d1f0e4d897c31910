"""docs/leaving-tf1.md: its programs, run from examples/, into Keras 3, ONNX Runtime, LiteRT."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    EXPECTED,
    FINAL,
    Forked,
    after,
    assert_same_output,
    code_blocks,
    example,
    finish,
    forked_result,
    parse_array,
    read,
    read_until,
    script_stderr,
    training_lines,
    transcript,
)

MOVE = "Moving the model to Keras 3"
FINISH = "Finishing a TF1 training run in Keras 3"
ONNX = "Running the export in ONNX Runtime"
LITERT = "Running the model on LiteRT"
CELLS = "Other TF1 cells into Keras 3"


def keras3_env():
    """The environment of TF2 code with Keras 3: no TF_USE_LEGACY_KERAS."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TF_USE_LEGACY_KERAS", None)
    return env


def save_programs(folder, *names):
    """Copies these programs of examples/ into folder: for variants of them, and their imports."""
    for name in names:
        shutil.copy(example(name), str(folder / name))


def run_python(folder, *args, tf1=False, bound=None):
    """Runs python3 ARGS in folder, with Keras 3, forked (conftest.Forked): a Result.

    tf1: TF1 code, which sets what it needs itself (tf-keras, TF1 graphs):
    forked from the server that imported the tutorial, which set the same.
    """
    flavour = "script" if tf1 else "keras3"
    return forked_result(Forked(folder, args, flavour, env=keras3_env()), bound)


def run_in_turn(runs):
    """Runs [(folder, program file), ...] one after another, each as `python3 PROGRAM` there.

    A program file is a file of examples/, or one in its folder. Returns
    [(stdout, exit status as text)]; run_python gives stderr too.
    """
    results = []
    for folder, name in runs:
        result = run_python(folder, os.path.join(str(folder), str(name)))
        results.append((result.stdout, str(result.returncode)))
    return results


# What the saved_model_cli command installed with TensorFlow runs.
SAVED_MODEL_CLI_MAIN = """
import sys
from tensorflow.python.tools.saved_model_cli import main
sys.argv[0] = "saved_model_cli"
sys.exit(main())
"""


def saved_model_cli(*args, cwd):
    """Runs saved_model_cli ARGS in cwd, forked (conftest.Forked): a Result."""
    return run_python(cwd, "-c", SAVED_MODEL_CLI_MAIN, *args)


def largest_difference(stdout):
    return float(re.search(r"Largest difference from the TF1 \w+'s logits: (\S+)", stdout)[1])


def replaced(text, old, new):
    """text with old replaced by new; old must be there, so the page's code cannot drift."""
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.heavy(7)
def test_the_model_moves_to_keras3_and_its_exports_serve(full_run, sar, tmp_path):
    folder, _ = full_run
    shutil.copytree(str(folder / "simple"), str(tmp_path / "simple"))
    printed = transcript(MOVE, "python3 examples/to_keras3.py")
    shown = code_blocks(MOVE, "text")[1]
    make, command, block = shown.split("\n", 2)
    # The page's own x.npy: three sequences, fed to saved_model_cli and the layer.
    subprocess.run([sys.executable, *shlex.split(make[2:])[1:]], cwd=str(tmp_path), check=True)
    features = np.random.RandomState(1).randn(3, 10, 30).astype(np.float32)
    assert np.array_equal(np.load(str(tmp_path / "x.npy")), features)
    assert command.startswith("$ saved_model_cli run ")
    # The Keras 3 export as a layer, which the TF1 export refuses.
    (tmp_path / "layer.py").write_text(
        "import keras, numpy as np\n"
        "layer = keras.layers.TFSMLayer('simple_keras3', call_endpoint='serve')\n"
        "np.save('layer.npy', layer(np.load('x.npy')))\n"
    )
    # Two variants: expected logits that are off, and Keras's default reset_after.
    off, reset_after = tmp_path / "off", tmp_path / "reset_after"
    for variant in (off, reset_after):
        shutil.copytree(str(folder / "simple"), str(variant / "simple"))
        save_programs(variant, "tf1_cells.py")
    expected = np.load(str(folder / EXPECTED))
    expected[40, 2] += 2e-6
    np.save(str(off / EXPECTED), expected)
    program = read(example("to_keras3.py"))
    (off / "to_keras3.py").write_text(program)
    wrong = replaced(program, "reset_after=False", "reset_after=True")
    (reset_after / "to_keras3.py").write_text(wrong)
    runs = [(tmp_path, example("to_keras3.py")), (tmp_path, "layer.py")]
    runs += [(tmp_path, example("run_litert.py")), (off, "to_keras3.py")]
    moved, layer, litert, off_run = run_in_turn(runs)
    served = saved_model_cli(*shlex.split(command)[2:], cwd=tmp_path)
    assert moved[1] == "0", moved
    assert largest_difference(moved[0]) <= 1e-6
    assert (tmp_path / "simple.keras").is_file()
    assert (tmp_path / "simple_keras3" / "saved_model.pb").is_file()
    # It checks, it does not only print; and Keras's default formula does not fit.
    assert off_run[1] == "1", off_run
    reset_after_run = run_python(reset_after, reset_after / "to_keras3.py")
    assert reset_after_run.returncode == 1, reset_after_run
    (error,) = [line for line in reset_after_run.stderr.splitlines() if "Error: " in line]
    assert error.startswith("ValueError: ") and "is not compatible with provided weight" in error
    # LiteRT runs the unrolled model.
    assert litert[1] == "0", litert
    assert largest_difference(litert[0]) <= 1e-6
    assert (tmp_path / "simple.tflite").is_file()

    # The Keras 3 export serves `features` alone, as the page shows, and as a layer.
    assert_same_output(printed, moved[0])
    assert served.returncode == 0, served.stderr[-3000:]
    assert_same_output(block, served.stdout)
    printed = re.findall(r"[-+]?\d+\.\d*(?:e[-+]?\d+)?", served.stdout.split(":", 1)[1])
    labels = np.zeros((3, 5), np.int32)
    (through_iterator,) = sar.infer_restored(str(tmp_path / "simple"), features, labels, 3)
    np.testing.assert_allclose(np.array(printed, float).reshape(3, 5), through_iterator, atol=1e-6)
    np.testing.assert_allclose(np.load(str(tmp_path / "layer.npy")), through_iterator, atol=1e-6)
    assert layer[1] == "0", layer


def stop_tf1_run(run_main, folder, steps, *args):
    """A TF1 run of the script, stopped after global step `steps`, in folder/ckpt."""
    folder.mkdir(exist_ok=True)
    result = run_main(folder, "--checkpoint-dir", "ckpt", "--max-steps", str(steps), *args)
    assert result.returncode == 0, result.stderr


def final_logits(stdout):
    return np.array([parse_array(text) for text in after(stdout, FINAL)])


def copy_of(folder, to):
    """A copy of a folder where a TF1 run stopped."""
    shutil.copytree(str(folder), str(to))
    return to


@pytest.mark.heavy(25)
def test_keras3_finishes_a_stopped_tf1_run_as_tf1_would_have(full_run, sar, tmp_path, run_main):
    _, full = full_run
    for steps in (1, 2, 3):
        stop_tf1_run(run_main, tmp_path / str(steps), steps)
    # First, a finish from step 1 killed right after its second step's line
    # (so after a checkpoint, maybe while the next one is written).
    cut = copy_of(tmp_path / "1", tmp_path / "cut")
    process = Forked(
        cut, [example("finish_in_keras3.py")], "keras3", keras3_env(), subprocess.DEVNULL
    )
    for _ in range(2):
        read_until(process, "Epoch")
    process.send_signal(signal.SIGKILL)
    finish(process)
    finisher = example("finish_in_keras3.py")
    runs = [(tmp_path / str(steps), finisher) for steps in (1, 2, 3)]
    # Each shortcut the page warns of, taken from the run stopped at step 1.
    program = read(finisher)
    moments = '    slots[name + "_momentum"].assign(momentum)\n'
    moments += '    slots[name + "_velocity"].assign(velocity)\n'
    shortcuts = {
        "epsilon": ("Adam(learning_rate=1e-2, epsilon=1e-8)", "Adam(learning_rate=1e-2)"),
        "fresh optimizer": (moments, "    pass\n"),
        "wrong batch": (".skip(tf1_step)", ""),
    }
    for name, (old, new) in shortcuts.items():
        folder = copy_of(tmp_path / "1", tmp_path / name.replace(" ", "_"))
        save_programs(folder, "tf1_cells.py", "to_keras3.py")
        (folder / "finish_in_keras3.py").write_text(replaced(program, old, new))
        runs.append((folder, "finish_in_keras3.py"))
    # A --shuffle run, stopped at step 2: the finish recomputes its orders too.
    (tmp_path / "shuffled").mkdir()
    shuffled = run_main(tmp_path / "shuffled", "--shuffle")
    stop_tf1_run(run_main, tmp_path / "shuffled", 2, "--shuffle")
    runs.append((tmp_path / "shuffled", finisher))
    # The killed finish, run again: it resumes from its own checkpoint.
    runs.append((cut, finisher))
    # Last, a TF1 run already at its end: nothing to finish, in one line.
    stop_tf1_run(run_main, tmp_path / "done", 4)
    results = run_in_turn(runs)
    done = run_python(tmp_path / "done", finisher)
    line = "ckpt/model.ckpt-4 is at step 4, the end of training: nothing is left to finish."
    assert (done.returncode, done.stdout, script_stderr(done.stderr)) == (1, "", [line]), done
    assert not (tmp_path / "done" / "finished.keras").exists()

    tf1_lines = training_lines(full.stdout)
    for steps, (stdout, status) in zip((1, 2, 3), results):
        assert status == "0", stdout
        first = stdout.splitlines()[0]
        assert first == f"Moved ckpt/model.ckpt-{steps} into Keras 3 at step {steps}"
        # The lines the uninterrupted TF1 run prints from that step on.
        expected = "\n".join(tf1_lines[steps:]) + "\n"
        assert_same_output(expected, "\n".join(training_lines(stdout)) + "\n")
        assert (tmp_path / str(steps) / "finished.keras").is_file()
    # The page shows the output after --max-steps 3.
    assert_same_output(transcript(FINISH, "python3 examples/finish_in_keras3.py"), results[2][0])
    shuffled_lines = "\n".join(training_lines(shuffled.stdout)[2:]) + "\n"
    assert results[6][1] == "0", results[6]
    assert_same_output(shuffled_lines, "\n".join(training_lines(results[6][0])) + "\n")
    for name, (stdout, status) in zip(shortcuts, results[3:6]):
        assert status == "0", (name, stdout)
        off = np.abs(final_logits(stdout) - final_logits(full.stdout)).max()
        # Off by more than the tolerance the right finish is checked with.
        assert off > (5e-5 if name == "epsilon" else 0.05), (name, off)

    # The killed finish resumed, and ended as the one that was not stopped, bit for bit.
    rest, status = results[7]
    assert status == "0", rest
    assert rest.startswith("Resumed from ckpt_keras3/ckpt-"), rest
    assert after(rest, FINAL) == after(results[0][0], FINAL)
    tf = sar.tf
    ends = [
        tf.train.load_checkpoint(str(folder / "ckpt_keras3" / "ckpt-4"))
        for folder in (tmp_path / "1", cut)
    ]
    kinds = ends[0].get_variable_to_dtype_map()
    # Every value (not the iterator's state, nor the object graph, which
    # names the layers, and names differ between processes).
    names = [n for n, kind in kinds.items() if kind != tf.variant and "OBJECT_GRAPH" not in n]
    assert len(names) > 20  # The weights, Adam's moments, its step.
    for name in names:
        assert np.array_equal(ends[0].get_tensor(name), ends[1].get_tensor(name)), name


def test_the_export_runs_in_onnx_runtime(full_run, sar, tmp_path):
    import onnxruntime

    folder, _ = full_run
    shutil.copytree(str(folder / "simple"), str(tmp_path / "simple"))
    install, convert = code_blocks(ONNX, "sh")[0].splitlines()
    # What the page installs is what the tests install.
    requirements = read(os.path.join(os.path.dirname(__file__), "requirements.txt"))
    for package in install.split()[2:]:
        assert re.search(r"^" + re.escape(package), requirements, re.MULTILINE), package
    command = shlex.split(convert)
    assert command[:3] == ["python3", "-m", "tf2onnx.convert"]
    converted = run_python(tmp_path, *command[1:])
    assert converted.returncode == 0, converted.stderr[-3000:]
    result = run_python(tmp_path, example("run_onnx.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert largest_difference(result.stdout) <= 1e-6
    assert script_stderr(result.stderr) == []
    # It checks: off expected logits exit 1.
    expected = np.load(str(tmp_path / EXPECTED))
    expected[63, 4] -= 2e-6
    np.save(str(tmp_path / EXPECTED), expected)
    assert run_python(tmp_path, example("run_onnx.py")).returncode == 1
    # Any number of sequences, of any length, as the TF1 export takes them.
    session = onnxruntime.InferenceSession(str(tmp_path / "simple.onnx"))
    rng = np.random.RandomState(2)
    for count, length in [(1, 10), (5, 3), (17, 25)]:
        features = rng.randn(count, length, 30).astype(np.float32)
        (logits,) = session.run(["dense/BiasAdd:0"], {"features:0": features})
        labels = np.zeros((count, 5), np.int32)
        (through_iterator,) = sar.infer_restored(str(tmp_path / "simple"), features, labels, count)
        np.testing.assert_allclose(logits, through_iterator, atol=1e-6)


@pytest.mark.heavy(14)
def test_an_lstm_model_of_ones_own_moves_to_keras3_with_its_mask(tmp_path):
    made = run_python(tmp_path, example("make_tf1_lstm.py"), tf1=True)
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout == "Wrote lstm_ckpt/ and lstm_ckpt/batch.npz\n"
    assert not [line for line in script_stderr(made.stderr) if "Warning" in line]
    # And a copy whose expected logits are off: it checks, it does not only print.
    shutil.copytree(str(tmp_path / "lstm_ckpt"), str(tmp_path / "off" / "lstm_ckpt"))
    batch = dict(np.load(str(tmp_path / "off" / "lstm_ckpt" / "batch.npz")))
    batch["expected"][2, 1] += 2e-6
    np.savez(str(tmp_path / "off" / "lstm_ckpt" / "batch.npz"), **batch)
    program = example("lstm_to_keras3.py")
    (moved, status), (_, off_status) = run_in_turn(
        [(tmp_path, program), (tmp_path / "off", program)]
    )
    assert status == "0", moved
    assert_same_output(transcript(CELLS, "python3 examples/lstm_to_keras3.py"), moved)
    assert largest_difference(moved) <= 1e-6
    # Each shortcut is far off, the forget bias's the least.
    off = [float(x) for x in re.findall(r": (\S+) off$", moved, re.MULTILINE)]
    assert len(off) == 3 and min(off) > 0.01, off
    assert (tmp_path / "lstm.keras").is_file()
    assert off_status == "1" and not (tmp_path / "off" / "lstm.keras").exists()


# Checks keras_rnn_weights on the TF1 cells saved by the test: each moved into
# Keras 3 gives TF1's logits; what Keras 3 cannot compute, or an unknown cell,
# is a ValueError of one line. Prints one line per check.
CHECK_CELLS = """
import keras, numpy as np, tensorflow as tf
from tf1_cells import keras_rnn_weights

read = tf.train.load_checkpoint("cells/model.ckpt").get_tensor
features, expected = np.load("cells/features.npy"), dict(np.load("cells/expected.npz"))
for name, layer in [
    ("GRUCell", keras.layers.GRU(5, reset_after=False)),
    ("LSTMCell", keras.layers.LSTM(5)),
]:
    dense = keras.layers.Dense(3)
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, dense(layer(inputs)))
    layer.set_weights(keras_rnn_weights(read, name + "/rnn/" + name.lower()[:-4] + "_cell", name))
    dense.set_weights([read(name + "/dense/kernel"), read(name + "/dense/bias")])
    logits = model.predict(features, verbose=0)
    print(name, float(np.abs(logits - expected[name]).max()))
for scope, cell in [
    ("peepholes/rnn/lstm_cell", "LSTMCell"),
    ("projection/rnn/lstm_cell", "LSTMCell"),
    ("GRUCell/rnn/gru_cell", "GRU"),
    ("GRUCell/rnn/gru_cell", "LSTMCell"),
]:
    try:
        keras_rnn_weights(read, scope, cell)
        print("moved")
    except ValueError as error:
        print("ValueError:", error)
"""


def test_keras_rnn_weights_moves_each_cell_and_refuses_what_keras_cannot_compute(tmp_path, sar):
    tf = sar.tf
    rng = np.random.RandomState(3)
    features = rng.randn(6, 7, 4).astype(np.float32)
    (tmp_path / "cells").mkdir()
    cells = {
        "GRUCell": lambda: tf.nn.rnn_cell.GRUCell(5),
        "LSTMCell": lambda: tf.nn.rnn_cell.LSTMCell(5),  # Its default forget_bias, 1.0.
        "peepholes": lambda: tf.nn.rnn_cell.LSTMCell(5, use_peepholes=True),
        "projection": lambda: tf.nn.rnn_cell.LSTMCell(5, num_proj=3),
    }
    expected = {}
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        inputs = tf.placeholder(tf.float32, [None, None, 4])
        outputs = {}
        for name, cell in cells.items():
            with tf.variable_scope(name):
                sequences, _ = tf.nn.dynamic_rnn(cell(), inputs, dtype=tf.float32)
                outputs[name] = tf.layers.dense(sequences[:, -1], 3)
        # Every weight and bias at random, so that no layout mistake hides behind a zero.
        for variable in tf.global_variables():
            values = rng.randn(*variable.shape.as_list()).astype(np.float32) * 0.5
            variable.load(values, sess)
        for name in ("GRUCell", "LSTMCell"):
            expected[name] = sess.run(outputs[name], {inputs: features})
        tf.train.Saver().save(sess, str(tmp_path / "cells" / "model.ckpt"))
    np.save(str(tmp_path / "cells" / "features.npy"), features)
    np.savez(str(tmp_path / "cells" / "expected.npz"), **expected)
    save_programs(tmp_path, "tf1_cells.py")
    result = run_python(tmp_path, "-c", CHECK_CELLS)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for line, name in zip(lines, ("GRUCell", "LSTMCell")):
        assert line.split()[0] == name and float(line.split()[1]) <= 1e-6, line
    assert lines[2:] == [
        (
            "ValueError: peepholes/rnn/lstm_cell has peepholes (use_peepholes=True), "
            "which Keras 3's LSTM does not compute"
        ),
        (
            "ValueError: projection/rnn/lstm_cell has a projection (num_proj), "
            "which Keras 3's LSTM does not compute"
        ),
        "ValueError: unknown cell 'GRU': GRUCell, LSTMCell or BasicLSTMCell",
        (
            "ValueError: no GRUCell/rnn/gru_cell/kernel to read: "
            "is GRUCell/rnn/gru_cell the scope of the LSTMCell?"
        ),
    ]
