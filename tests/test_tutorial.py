"""The tutorial end to end: what a user runs, sees and gets."""

import os
import re
import subprocess
import sys

import numpy as np
from conftest import (
    README,
    ROOT,
    SCRIPT,
    after,
    assert_same_output,
    code_blocks,
    parse_array,
    read,
    script_stderr,
)


def lines_with(stdout, text):
    return [line for line in stdout.splitlines() if text in line]


def test_run_prints_the_lesson_and_writes_the_export(full_run):
    folder, result = full_run
    assert result.returncode == 0, result.stderr
    samples = lines_with(result.stdout, "Sample value")
    assert len(samples) == 6
    assert [line.split(" |")[0] for line in samples] == [
        "Epoch 0, batch 0",
        "Epoch 0, batch 1",
        "Epoch 1, batch 0",
        "Epoch 1, batch 1",
        "Epoch 2, batch 0",
        "Epoch 2, batch 1",
    ]
    final = [line for line in samples if "| Final inference |" in line]
    restored = lines_with(result.stdout, "Restored values: ")
    assert len(final) == len(restored) == 2
    # Same machine, same graph: the restored logits are bit-identical, so the
    # printed values are the same text.
    assert [line.split("Sample value: ")[1] for line in final] == [
        line.split("Restored values: ")[1] for line in restored
    ]
    # Training moves the logits: the first sample's are not the same every epoch.
    firsts = [parse_array(text) for text in after(result.stdout, "Sample value: ")]
    assert not np.array_equal(firsts[0], firsts[4])
    assert result.stdout.rstrip().splitlines()[-1] == "Inferences match: True"
    assert os.path.isfile(os.path.join(folder, "simple", "saved_model.pb"))
    assert os.path.isfile(os.path.join(folder, "simple", "variables", "variables.index"))


def test_run_prints_nothing_on_stderr_but_tensorflow_start_up_notices(full_run):
    _, result = full_run
    assert script_stderr(result.stderr) == []


def test_restored_model_serves_any_batch_size(full_run, sar):
    folder, _ = full_run
    export_dir = str(folder / "simple")
    features, labels = sar.make_data()
    by_32 = sar.infer_restored(export_dir, features, labels, 32)
    assert [len(batch) for batch in by_32] == [32, 32]
    for batch_size, sizes in [(5, [5] * 12 + [4]), (7, [7] * 9 + [1]), (64, [64]), (100, [64])]:
        batches = sar.infer_restored(export_dir, features, labels, batch_size)
        assert [len(batch) for batch in batches] == sizes
        np.testing.assert_allclose(np.concatenate(batches), np.concatenate(by_32), atol=1e-6)


def test_forward_and_backward_weights_are_separate(full_run, sar):
    folder, _ = full_run
    checkpoint = str(folder / "simple" / "variables" / "variables")
    names = [name for name, _ in sar.tf.train.list_variables(checkpoint)]
    # The GRU's own weights, not Adam's slots for them.
    kernels = [name for name in names if "gru_cell" in name and "Adam" not in name]
    fw = sorted(name for name in kernels if "/fw/" in name)
    bw = sorted(name for name in kernels if "/bw/" in name)
    assert len(fw) == len(bw) == 4  # Gates and candidate, kernel and bias each.
    assert [name.replace("/fw/", "/bw/") for name in fw] == bw
    for fw_name, bw_name in zip(fw, bw):
        fw_value = sar.tf.train.load_variable(checkpoint, fw_name)
        bw_value = sar.tf.train.load_variable(checkpoint, bw_name)
        assert fw_value.shape == bw_value.shape
        assert not np.array_equal(fw_value, bw_value), fw_name


def test_comparison_finds_every_mismatch(sar):
    a, b = np.ones((32, 5), np.float32), np.zeros((32, 5), np.float32)
    assert sar.inferences_match([a, b], [a.copy(), b.copy()])
    changed = a.copy()
    changed[31, 4] = np.nextafter(changed[31, 4], np.float32(2))
    assert not sar.inferences_match([a, b], [changed, b])
    assert not sar.inferences_match([a, b], [a])  # A missing batch.
    assert not sar.inferences_match([a], [a, b])  # An extra batch.
    assert not sar.inferences_match([a, b], [b, a])


def test_script_exits_1_when_the_inferences_differ(sar, tmp_path, monkeypatch, capsys):
    infer_restored = sar.infer_restored

    def lose_last_batch(*args):
        return infer_restored(*args)[:-1]

    monkeypatch.setattr(sar, "infer_restored", lose_last_batch)
    assert sar.main(["--export-dir", str(tmp_path / "model")]) == 1
    out = capsys.readouterr().out
    assert len(lines_with(out, "Restored values: ")) == 1
    assert out.rstrip().splitlines()[-1] == "Inferences match: False"


def expected_output():
    """The block of the README that shows what a run prints."""
    return code_blocks("What it prints", "text")[0]


def test_readme_shows_what_a_run_prints(full_run):
    _, result = full_run
    assert_same_output(expected_output(), result.stdout)


def test_readme_test_command_is_what_ci_runs():
    readme = read(README)
    ci = read(os.path.join(ROOT, ".ci", "run")).splitlines()
    # The README's test command, as CI runs it; and the pages in order, for --full.
    assert "python3 -m pytest tests" in ci and "python3 -m pytest tests" in readme
    in_order = "python3 -m pytest tests/test_pages_in_order.py --in-order -n 0"
    assert "  " + in_order in ci
    assert in_order in " ".join(readme.split())


def test_missing_tf_keras_is_one_line_saying_what_to_install(tmp_path):
    # Hide the installed tf-keras from the script, as on a machine without it.
    hide = (
        "import importlib.util, runpy, sys\n"
        "find_spec = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'tf_keras' "
        "else find_spec(name, *a)\n"
        "sys.argv = [sys.argv[1]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    result = subprocess.run(
        [sys.executable, "-c", hide, SCRIPT],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        check=False,
        text=True,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    version, major, minor = re.search(r"TensorFlow ((\d+)\.(\d+)\.\S+) ", result.stderr).groups()
    message = (
        f"error: TensorFlow {version} keeps the TF1 RNN cells and layers in the tf-keras "
        f"package: pip install tf-keras~={major}.{minor}.0"
    )
    assert script_stderr(result.stderr) == [message]
    assert os.listdir(str(tmp_path)) == []
