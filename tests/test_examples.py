"""The programs of examples/: bad paths refused in one line, before TensorFlow is imported."""

import contextlib
import os
import shutil
import subprocess

import pytest
from conftest import EXAMPLES, example, run_light
from test_safety import snapshot

# What each program reads and writes in the folder it runs in: (arguments,
# inputs, outputs). Those that read nothing the tutorial or another program
# wrote have no inputs; those that write nothing, no outputs.
PROGRAMS = {
    "restore_simple.py": ([], ["simple/saved_model.pb"], []),
    "tf2_predict.py": ([], ["simple/saved_model.pb"], []),
    "keras_layer.py": ([], ["simple/saved_model.pb"], []),
    "to_keras3.py": ([], ["simple/saved_model.pb"], ["simple_keras3", "simple.keras"]),
    "finish_in_keras3.py": ([], ["ckpt/checkpoint"], ["finished.keras"]),
    "make_tf1_lstm.py": ([], [], ["lstm_ckpt"]),
    "lstm_to_keras3.py": ([], ["lstm_ckpt/batch.npz"], ["lstm.keras"]),
    "run_onnx.py": ([], ["simple/assets.extra/expected_logits.npy", "simple.onnx"], []),
    "run_litert.py": (
        [],
        ["simple.keras", "simple/assets.extra/expected_logits.npy"],
        ["simple.tflite"],
    ),
    "own_model.py": ([], [], ["own"]),
    "make_2018_export.py": ([], [], ["old_export"]),
    "make_seq2seq_export.py": ([], [], ["seq2seq_vocab", "seq2seq_export"]),
    "upgrade_export.py": (["old", "new"], ["old/saved_model.pb"], ["new"]),
    "keep_iterator.py": ([], ["old_export/saved_model.pb"], []),
    "use_new_export.py": ([], ["new_export/saved_model.pb"], []),
    "run_new_onnx.py": ([], ["new_export.onnx"], []),
    "several_workers.py": (
        ["--local-workers", "2", "--checkpoint-dir", "ckpt"],
        [],
        ["ckpt", "workers_export"],
    ),
}
# Imported by the others, never run.
LIBRARIES = {"tf1_cells.py"}


def refused(env, folder, program, *args):
    """Runs the program in folder: its one line on stderr, after checking it exits nonzero."""
    result = run_light(env, folder, program, *args)
    assert result.returncode != 0, (program, result.stdout)
    assert result.stdout == "", (program, result.stdout)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, (program, result.stderr)
    assert not lines[0].startswith("imported "), (program, lines[0])
    return lines[0]


def make(folder, paths):
    """Makes each path under folder: a file, with the folders it is in."""
    for path in paths:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text("")


@contextlib.contextmanager
def read_only(folder):
    """The folder made one that this process cannot write to, root included."""
    os.chmod(str(folder), 0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr")
    if immutable:  # Root writes anywhere, but in an immutable folder.
        subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)
    try:
        if os.access(str(folder), os.W_OK):
            pytest.skip("no way to make a folder read-only for this user here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=False, capture_output=True)
        os.chmod(str(folder), 0o755)


def test_every_program_is_checked_here():
    names = {name for name in os.listdir(EXAMPLES) if name.endswith(".py")}
    assert names - LIBRARIES <= set(PROGRAMS), names - LIBRARIES - set(PROGRAMS)


@pytest.mark.parametrize("name", sorted(name for name in PROGRAMS if PROGRAMS[name][1]))
def test_a_missing_input_is_one_line_that_says_what_to_run(tmp_path, no_heavy_imports, name):
    args, inputs, _ = PROGRAMS[name]
    # Each input missing in turn, the others there.
    for missing in inputs:
        folder = tmp_path / missing.replace("/", "_")
        folder.mkdir()
        make(folder, [path for path in inputs if path != missing])
        before = snapshot(str(folder))
        line = refused(no_heavy_imports, folder, example(name), *args)
        if name == "upgrade_export.py":
            assert line == "upgrade_export.py: old: no such file or folder"
        else:
            # Its name, and the command that makes it.
            assert line.startswith("No ") and " here: run " in line, line
            assert missing.split("/")[0] in line, line
        assert snapshot(str(folder)) == before


@pytest.mark.parametrize("name", sorted(name for name in PROGRAMS if PROGRAMS[name][2]))
def test_an_output_already_there_is_never_replaced(tmp_path, no_heavy_imports, name):
    args, inputs, outputs = PROGRAMS[name]
    for output in outputs:
        folder = tmp_path / output
        folder.mkdir()
        make(folder, inputs)
        (folder / output).mkdir()
        (folder / output / "mine.txt").write_text("mine")
        before = snapshot(str(folder))
        line = refused(no_heavy_imports, folder, example(name), *args)
        assert output in line, line
        assert "already exists" in line or "holds an export" in line or "is not an" in line, line
        assert snapshot(str(folder)) == before


@pytest.mark.parametrize("name", sorted(name for name in PROGRAMS if PROGRAMS[name][2]))
def test_a_folder_it_cannot_write_to_is_one_line(tmp_path, no_heavy_imports, name):
    args, inputs, _ = PROGRAMS[name]
    make(tmp_path, inputs)
    before = snapshot(str(tmp_path))
    with read_only(tmp_path):
        line = refused(no_heavy_imports, tmp_path, example(name), *args)
    assert "annot write" in line and str(tmp_path) in line, line
    assert snapshot(str(tmp_path)) == before


@pytest.mark.parametrize(
    "name, beside",
    [
        ("to_keras3.py", "tf1_cells.py"),
        ("lstm_to_keras3.py", "tf1_cells.py"),
        ("finish_in_keras3.py", "to_keras3.py"),
        ("run_litert.py", "to_keras3.py"),
        ("upgrade_export.py", "upgrade_export/"),
    ],
)
def test_a_program_copied_out_alone_names_the_file_it_needs(
    tmp_path, no_heavy_imports, name, beside
):
    args, inputs, _ = PROGRAMS[name]
    make(tmp_path, inputs)
    shutil.copy(example(name), str(tmp_path / name))
    # to_keras3.py copied too, without the tf1_cells.py that it needs in turn.
    if beside == "to_keras3.py":
        shutil.copy(example(beside), str(tmp_path / beside))
        beside, name_needing = "tf1_cells.py", beside
    else:
        name_needing = name
    line = refused(no_heavy_imports, tmp_path, name, *args)
    assert line == f"No {beside} beside {name_needing}: copy it from examples/ too."
    # And with nothing beside it at all.
    if name_needing != name:
        (tmp_path / name_needing).unlink()
        line = refused(no_heavy_imports, tmp_path, name, *args)
        assert line == f"No {name_needing} beside {name}: copy it from examples/ too."


# A checkpoint the upgrade cannot read, each said in one line before TensorFlow's import.
CHECKPOINT = 'model_checkpoint_path: "model.ckpt-4"\nall_model_checkpoint_paths: "model.ckpt-4"\n'
NO_GRAPH = (
    "upgrade_export.py: ckpt/model.ckpt-4 holds weights but not the graph (no "
    "ckpt/model.ckpt-4.meta: saved with write_meta_graph=False, as save_and_restore.py's "
    "--checkpoint-dir does): export the model from the code that builds it instead, as "
    "save_and_restore.py exports itself (docs/own-model.md shows how for your model)"
)


def test_upgrade_export_says_what_a_checkpoint_lacks_before_tensorflow(tmp_path, no_heavy_imports):
    # The tutorial's own --checkpoint-dir: a checkpoint file, weights, no graph.
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint").write_text(CHECKPOINT)
    make(tmp_path, ["ckpt/model.ckpt-4.index", "ckpt/model.ckpt-4.data-00000-of-00001"])
    make(tmp_path, ["graph_only.meta", "no_data.meta", "no_data.index", "empty/checkpoint"])
    before = snapshot(str(tmp_path))
    refusals = {
        ("ckpt", "new"): NO_GRAPH,
        ("ckpt/model.ckpt-4", "new"): NO_GRAPH,
        ("ckpt/model.ckpt-4.index", "new"): NO_GRAPH,
        (
            "ckpt/model.ckpt-9",
            "new",
        ): "upgrade_export.py: ckpt/model.ckpt-9: no such file or folder",
        ("graph_only", "new"): (
            "upgrade_export.py: graph_only has a graph but no weights: there is no graph_only.index"
        ),
        ("no_data.meta", "new"): (
            "upgrade_export.py: no_data is incomplete: it has no no_data.data-... file"
        ),
        ("empty", "new"): "upgrade_export.py: empty/checkpoint names no checkpoint",
        ("--output", "logits", "ckpt", "new"): (
            "upgrade_export.py: --output takes KEY=TENSOR (logits=dense/BiasAdd:0), not 'logits'"
        ),
        ("--output=y=a:0", "--output", "y=b:0", "ckpt", "new"): (
            "upgrade_export.py: --output y is given twice"
        ),
    }
    for args, message in refusals.items():
        assert refused(no_heavy_imports, tmp_path, example("upgrade_export.py"), *args) == message
    assert snapshot(str(tmp_path)) == before


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_help_says_how_to_run_it_and_an_argument_it_does_not_take_is_refused(
    tmp_path, no_heavy_imports, name
):
    for flag in ("--help", "-h"):
        helped = run_light(no_heavy_imports, tmp_path, example(name), flag)
        assert (helped.returncode, helped.stderr) == (0, ""), helped
        assert "usage" in helped.stdout.lower() and name in helped.stdout, helped.stdout
    args = PROGRAMS[name][0]  # With what it takes, if anything: never ignored.
    line = refused(no_heavy_imports, tmp_path, example(name), *args, "--bogus")
    assert "--bogus" in line or "takes no arguments" in line, line
    assert os.listdir(str(tmp_path)) == []
