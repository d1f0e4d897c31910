"""Past the original: restore in another process, the pitfall on demand, serving."""

import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    EXPECTED,
    after,
    assert_same_output,
    code_blocks,
    doc_section,
    example,
    parse_array,
    read,
    run_forked,
    run_script,
    script_stderr,
)
from test_leaving_tf1 import run_python, saved_model_cli
from test_safety import snapshot

GETNEXT_ERROR = "GetNext() failed because the iterator has not been initialized"


@pytest.mark.heavy(7)
def test_restore_only_prints_the_full_runs_final_inference_and_never_writes(full_run):
    folder, full = full_run
    before = snapshot(str(folder))
    result = run_forked(folder, "--restore-only")
    assert result.returncode == 0, result.stderr
    restored = after(result.stdout, "Restored values: ")
    assert len(restored) == 2
    assert restored == after(full.stdout, "Final inference | Sample value: ")
    assert result.stdout.rstrip().splitlines()[-1] == "Inferences match: True"
    assert "Epoch" not in result.stdout and "Saving" not in result.stdout
    assert snapshot(str(folder)) == before


def test_full_run_saves_its_final_inference_next_to_the_model(full_run):
    folder, full = full_run
    expected = np.load(str(folder / EXPECTED))
    assert expected.shape == (64, 5) and expected.dtype == np.float32
    final = [parse_array(text) for text in after(full.stdout, "Final inference | Sample value: ")]
    np.testing.assert_allclose(final, expected[[0, 32]], atol=1e-7)


def test_restore_only_serves_any_batch_size(full_run, run_main):
    folder, _ = full_run
    expected = np.load(str(folder / EXPECTED))
    for batch_size, batches in [("5", 13), ("64", 1), ("1", 64)]:
        # The README's example runs as a user runs it; the others in-process.
        run = run_script if batch_size == "5" else run_main
        result = run(folder, "--restore-only", "--batch-size", batch_size)
        assert result.returncode == 0, result.stderr
        restored = [parse_array(text) for text in after(result.stdout, "Restored values: ")]
        assert len(restored) == batches
        firsts = expected[:: int(batch_size)]
        np.testing.assert_allclose(restored, firsts, atol=1e-6)
        assert result.stdout.rstrip().endswith("Inferences match: True")


def test_restore_only_exits_1_when_the_expectation_differs(full_run, tmp_path, run_main):
    folder, _ = full_run
    shutil.copytree(str(folder / "simple"), str(tmp_path / "simple"))
    expected = np.load(str(folder / EXPECTED))
    altered = expected.copy()
    altered[40, 2] += 1e-4  # A sample in the second batch, not one printed.
    for wrong in (altered, expected[:-1]):  # A changed value; a missing sample.
        np.save(str(tmp_path / EXPECTED), wrong)
        result = run_main(tmp_path, "--restore-only")
        assert result.returncode == 1, result.stderr
        assert result.stdout.rstrip().splitlines()[-1] == "Inferences match: False"
    np.save(str(tmp_path / EXPECTED), expected)
    assert run_main(tmp_path, "--restore-only").returncode == 0


def test_show_pitfall_reproduces_the_error_then_does_it_right(tmp_path):
    result = run_script(tmp_path, "--show-pitfall")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"FailedPreconditionError: {GETNEXT_ERROR}" in out
    assert "Why: the new iterator is not the one the model reads from" in out
    assert "found by its name, dataset_init" in out
    assert out.index(GETNEXT_ERROR) < out.index("Restoring from simple")
    # The README shows the end of this output, from the pitfall's first line on.
    (shown,) = code_blocks("The pitfall", "text")[1:]
    assert_same_output(shown, out[out.index("The pitfall: ") :])
    assert len(after(out, "Restored values: ")) == 2
    assert out.rstrip().splitlines()[-1] == "Inferences match: True"
    # Not even TensorFlow's warning of the step that failed: only its start-up notes.
    assert script_stderr(result.stderr) == []


def test_show_pitfall_exits_1_when_the_pitfall_does_not_happen(
    tmp_path, run_main, sar, monkeypatch
):
    # As if fetching the restored logits had worked after initializing a new iterator.
    monkeypatch.setattr(sar, "show_pitfall", lambda *args: None)
    result = run_main(tmp_path, "--show-pitfall")
    assert result.returncode == 1, result.stderr
    assert "Fetching the restored logits did not fail." in result.stdout
    assert "FailedPreconditionError" not in result.stdout
    assert result.stdout.rstrip().endswith("Inferences match: True")


def serve(export_dir, folder, **inputs):
    """Runs the export with saved_model_cli on the given arrays; returns the logits."""
    for key, value in inputs.items():
        np.save(str(folder / f"{key}.npy"), value)
    feeds = ";".join(f"{key}={folder / key}.npy" for key in inputs)
    outdir = folder / "out"
    shutil.rmtree(str(outdir), ignore_errors=True)
    result = saved_model_cli(
        "run",
        "--dir",
        export_dir,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        feeds,
        "--outdir",
        str(outdir),
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(str(outdir / "logits.npy"))


@pytest.mark.heavy(10)
def test_saved_model_cli_serves_the_export_without_the_iterator(full_run, sar, tmp_path):
    folder, _ = full_run
    export_dir = str(folder / "simple")
    # The page's two commands, as printed, in a folder holding simple/.
    os.symlink(export_dir, str(tmp_path / "simple"))
    block = code_blocks("Serving the export", "text")[1]
    commands = re.findall(r"^\$ (.*)$", block, re.MULTILINE)
    assert len(commands) == 2 and commands[0].startswith("python3 -c ")
    made = subprocess.run(
        [sys.executable] + shlex.split(commands[0])[1:], cwd=str(tmp_path), check=False
    )
    assert made.returncode == 0
    served = saved_model_cli(*shlex.split(commands[1])[1:], cwd=str(tmp_path))
    assert served.returncode == 0, served.stderr[-3000:]
    assert_same_output(block.split(commands[1] + "\n", 1)[1], served.stdout)
    # Inputs the model has never seen: the iterator path gives the same logits.
    features = np.load(str(tmp_path / "x.npy"))
    printed = re.findall(r"[-+]?\d+\.\d*(?:e[-+]?\d+)?", served.stdout.split(":", 1)[1])
    labels = np.zeros((3, 5), np.int32)  # The iterator needs some; the model ignores them.
    (through_iterator,) = sar.infer_restored(export_dir, features, labels, 3)
    np.testing.assert_allclose(np.array(printed, float).reshape(3, 5), through_iterator, atol=1e-6)
    # As TF Serving wants it, for any number of sequences: every signature
    # input sent, the iterator's with placeholder values. The same logits.
    features = np.random.RandomState(2).randn(17, 10, 30).astype(np.float32)
    served_all = serve(
        export_dir,
        tmp_path,
        features=features,
        batch_size_ph=np.int64(1),
        features_data_ph=np.zeros((0, 10, 30), np.float32),
        labels_data_ph=np.zeros((0, 5), np.int32),
    )
    (through_iterator,) = sar.infer_restored(export_dir, features, np.zeros((17, 5), np.int32), 17)
    np.testing.assert_allclose(served_all, through_iterator, atol=1e-6)


def test_the_original_restore_code_still_works_on_the_export(full_run, sar):
    folder, _ = full_run
    tf = sar.tf
    features, labels = sar.make_data()
    expected = np.load(str(folder / EXPECTED))
    # The original post's restore side, names and all.
    graph2 = tf.Graph()
    with graph2.as_default(), tf.Session(graph=graph2) as sess:
        tf.saved_model.loader.load(sess, ["serve"], str(folder / "simple"))
        labels_data_ph = graph2.get_tensor_by_name("labels_data_ph:0")
        features_data_ph = graph2.get_tensor_by_name("features_data_ph:0")
        batch_size_ph = graph2.get_tensor_by_name("batch_size_ph:0")
        restored_logits = graph2.get_tensor_by_name("dense/BiasAdd:0")
        dataset_init_op = graph2.get_operation_by_name("dataset_init")
        sess.run(
            dataset_init_op,
            feed_dict={features_data_ph: features, labels_data_ph: labels, batch_size_ph: 32},
        )
        restored = [sess.run(restored_logits) for _ in range(2)]
    np.testing.assert_allclose(np.concatenate(restored), expected, atol=1e-6)


def test_signature_keeps_the_original_keys_and_adds_features(full_run, sar):
    folder, _ = full_run
    tf = sar.tf
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta_graph = tf.saved_model.loader.load(sess, ["serve"], str(folder / "simple"))
    signature = meta_graph.signature_def["serving_default"]
    assert {key: info.name for key, info in signature.inputs.items()} == {
        "batch_size_ph": "batch_size_ph:0",
        "features_data_ph": "features_data_ph:0",
        "labels_data_ph": "labels_data_ph:0",
        "features": "features:0",
    }
    assert {key: info.name for key, info in signature.outputs.items()} == {
        "logits": "dense/BiasAdd:0"
    }


def test_readme_restore_program_prints_the_final_inference(full_run):
    folder, full = full_run
    result = run_python(folder, example("restore_simple.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == after(full.stdout, "Final inference | Sample value: ")


def readme_block(heading, command):
    """The lines of the docs' text block under heading that follow `$ command`."""
    section = doc_section(heading)
    block = section.split("$ " + command + "\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_readme_shows_the_signature_saved_model_cli_shows(full_run):
    folder, _ = full_run
    result = saved_model_cli("show", "--dir", str(folder / "simple"), "--all", cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    # What comes before the list of op types, whose order changes from run to run.
    shown = result.stdout.split("The MetaGraph with tag set", 1)[0].splitlines()
    assert (
        readme_block("Finding the names in an export", "saved_model_cli show --dir simple --all")
        == shown
    )
    # The signature alone, as `--signature_def serving_default` shows it, two spaces less indented.
    start = shown.index("signature_def['serving_default']:") + 1
    signature = [line[2:] for line in shown[start:]]
    command = "saved_model_cli show --dir simple --tag_set serve --signature_def serving_default"
    assert readme_block("Serving the export", command) == signature


# What the TF2 programs must also show: the ways that fail, fail as the page says.
TF2_FAILURES = """
try:
    serve(features=tf.constant(features))
except TypeError as error:
    print("signature with features alone:", "missing a required argument" in str(error))
"""
KERAS_FAILURES = """
for call in (lambda layer: layer(features), lambda layer: layer({"features": features})):
    try:
        call(keras.layers.TFSMLayer("simple", call_endpoint="serving_default"))
    except TypeError:
        print("TFSMLayer: TypeError")
"""

# Runs each program in a namespace of its own, so that one that leans on
# another's names fails with a NameError: each must run alone, as its file does.
RUN_EACH = """
import sys
for program in sys.argv[1:]:
    sys.argv = ["program.py"]  # Each run as `python3 program.py`, with no argument.
    exec(compile(program, "<program>", "exec"), {"__name__": "__main__"})
    print("----")
"""


def test_tf2_programs_give_the_iterator_paths_logits(full_run, sar):
    folder, _ = full_run
    tf2, keras_layer = read(example("tf2_predict.py")), read(example("keras_layer.py"))
    # TF2 code, with Keras 3.
    result = run_python(folder, "-c", RUN_EACH, tf2 + TF2_FAILURES, keras_layer + KERAS_FAILURES)
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing on stderr but TensorFlow's start-up notices: no warning per variable.
    assert script_stderr(result.stderr) == []
    first, second, rest = result.stdout.split("----\n")
    assert rest == ""
    assert first.splitlines()[-1] == "signature with features alone: True"
    assert second.splitlines()[-2:] == ["TFSMLayer: TypeError", "TFSMLayer: TypeError"]
    number = r"[-+]?\d+\.\d*(?:e[-+]?\d+)?"
    printed = [
        re.findall(number, "".join(text.splitlines()[:-n])) for text, n in [(first, 1), (second, 2)]
    ]
    logits = np.array([float(x) for x in printed[0] + printed[1]]).reshape(3, 3, 5)
    features = np.random.RandomState(1).randn(3, 10, 30).astype(np.float32)
    labels = np.zeros((3, 5), np.int32)
    (through_iterator,) = sar.infer_restored(str(folder / "simple"), features, labels, 3)
    for way in logits:  # The signature, the pruned function, the Keras 3 layer.
        np.testing.assert_allclose(way, through_iterator, atol=1e-6)
