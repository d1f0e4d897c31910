"""docs/own-model.md: a model of one's own, run from examples/, and what the page claims of it."""

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_same_output, code_blocks, example, read, script_stderr, transcript
from test_leaving_tf1 import run_python, saved_model_cli

OWN = "A model of your own"
EXTRA = os.path.join("own", "assets.extra")


def own_model(folder, code=None):
    """Runs examples/own_model.py in folder; or code, a variant of it, saved there."""
    if code is None:
        return run_python(folder, example("own_model.py"), tf1=True)
    (folder / "own_model.py").write_text(code)
    return run_python(folder, "own_model.py", tf1=True)


@pytest.mark.heavy(13)
def test_own_model_trains_exports_restores_and_serves_as_the_page_shows(tmp_path):
    result = own_model(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_output(transcript(OWN, "python3 examples/own_model.py"), result.stdout)
    # Nothing on stderr but TensorFlow's own notices: no Python warning.
    assert [line for line in script_stderr(result.stderr) if "Warning" in line] == []
    expected = np.load(str(tmp_path / EXTRA / "expected_logits.npy"))
    inputs = np.load(str(tmp_path / EXTRA / "inputs.npz"))
    assert expected.shape == (500, 2)
    assert sorted(inputs.files) == ["lengths", "tokens"]
    assert inputs["tokens"].shape == (500, 20) and inputs["lengths"].shape == (500,)
    assert 3 <= inputs["lengths"].min() and inputs["lengths"].max() <= 20
    # Run again, it refuses to replace own/, in one line, and leaves it as it is.
    before = sorted(os.listdir(str(tmp_path / "own")))
    again = own_model(tmp_path)
    assert again.returncode == 1
    assert script_stderr(again.stderr) == [
        "own/ holds an export: remove it (rm -rf own) to export again"
    ]
    assert sorted(os.listdir(str(tmp_path / "own"))) == before
    # Anything else named own is not its to remove: a folder of notes, a broken link.
    for other in ("notes", "link"):
        folder = tmp_path / other
        folder.mkdir()
        if other == "notes":
            (folder / "own").mkdir()
            (folder / "own" / "notes.txt").write_text("mine")
        else:
            (folder / "own").symlink_to("nowhere")
        refused = own_model(folder)
        assert refused.returncode == 1
        assert script_stderr(refused.stderr) == [
            "own exists and is not an export: it is left as it is"
        ]
    assert (tmp_path / "notes" / "own" / "notes.txt").read_text() == "mine"

    # Serving several inputs, as printed: both fed, then one of them alone.
    both, one = code_blocks("Serving several inputs", "text")
    make, serve, *shown = both.splitlines()
    subprocess.run([sys.executable] + shlex.split(make[2:])[1:], cwd=str(tmp_path), check=True)
    command, last = one.splitlines()
    served = saved_model_cli(*shlex.split(serve)[2:], cwd=tmp_path)
    assert served.returncode == 0, served.stderr[-3000:]
    assert_same_output("\n".join(shown) + "\n", served.stdout)
    printed = re.findall(r"[-+]?\d+\.\d*(?:e[-+]?\d+)?", served.stdout.split(":", 1)[1])
    np.testing.assert_allclose(np.array(printed, float).reshape(3, 2), expected[:3], atol=1e-6)
    alone = saved_model_cli(*shlex.split(command)[2:], cwd=tmp_path)
    assert alone.returncode == 1
    assert last in alone.stderr.splitlines()


def test_a_shuffle_left_in_the_export_is_seen_only_through_the_bypasses(tmp_path):
    code = read(example("own_model.py"))
    shuffled = 'dataset = dataset.shuffle(data["shuffle_buffer"], seed=data["epoch_seed"])'
    assert shuffled in code
    result = own_model(
        tmp_path, code.replace(shuffled, "dataset = dataset.shuffle(SAMPLES, seed=1)")
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == [
        "Restored through its iterator: True",
        "Restored through tokens and lengths fed directly: False",
    ]
