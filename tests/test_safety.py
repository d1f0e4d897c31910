"""Never lose a user's files; one clear line for every bad input."""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import (
    EXPECTED,
    SCRIPT,
    code_blocks,
    finish,
    fork_script,
    read_until,
    run_forked,
    run_light,
    run_script,
    script_stderr,
    start_paused,
)


def snapshot(path):
    """Every file and folder under path (or path itself), with the bytes of each file."""
    if os.path.isfile(path):
        with open(path, "rb") as file:
            return {".": file.read()}
    tree = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            tree[os.path.relpath(os.path.join(folder, name), path)] = "dir"
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                tree[os.path.relpath(os.path.join(folder, name), path)] = file.read()
    return tree


def assert_refused(result, *words):
    """Exit 2, nothing on stdout past the restore header, one line on stderr naming words."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = script_stderr(result.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Sample value" not in result.stdout  # Refused before any training.
    return lines[0]


@pytest.mark.parametrize("kind", ["folder with a file", "empty folder", "file"])
def test_a_users_simple_is_left_exactly_as_it_is(tmp_path, run_main, kind):
    target = tmp_path / "simple"
    if kind == "file":
        target.write_bytes(b"my notes\n")
    else:
        target.mkdir()
        if kind == "folder with a file":
            (target / "thesis.tex").write_bytes(b"\\documentclass{article}\n")
            (target / "saved_models").mkdir()
    before = snapshot(str(target))
    # The case that matters most runs as a user runs it; the others in-process.
    run = run_script if kind == "folder with a file" else run_main
    line = assert_refused(run(tmp_path), "simple", "not a SavedModel", "--export-dir")
    assert "remove it yourself" in line
    assert snapshot(str(target)) == before
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]  # Nothing temporary left.


def test_runs_repeat_the_same_numbers_and_replace_the_export(full_run, tmp_path, run_main):
    _, first = full_run
    second = run_forked(tmp_path)  # A process of its own.
    assert second.returncode == 0, second.stderr
    (tmp_path / "simple" / "variables" / "marker").write_bytes(b"from the second run")
    third = run_main(tmp_path)  # This one replaces the second one's export.
    assert third.returncode == 0, third.stderr
    assert first.stdout == second.stdout == third.stdout
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]
    assert not (tmp_path / "simple" / "variables" / "marker").exists()
    assert sorted(os.listdir(str(tmp_path / "simple"))) == [
        "assets.extra",
        "saved_model.pb",
        "variables",
    ]


def test_sigkill_during_the_export_never_leaves_a_broken_export(full_run, tmp_path, run_main):
    shutil.copytree(str(full_run[0] / "simple"), str(tmp_path / "simple"))
    export = snapshot(str(tmp_path / "simple"))
    # First, by construction, while the new export is half written: the run
    # waits there, once simple_save is done, to be killed.
    process, _ = start_paused(tmp_path, "export written", 1)
    process.send_signal(signal.SIGKILL)
    finish(process)
    (left,) = [name for name in os.listdir(str(tmp_path)) if name != "simple"]
    assert sorted(os.listdir(str(tmp_path / left))) == ["new"]
    assert not (tmp_path / left / "new" / "assets.extra").exists()
    assert snapshot(str(tmp_path / "simple")) == export
    # Then wherever the kills land, from the "Saving" line on.
    for number in range(2):
        if number:
            process = fork_script(tmp_path, stderr=subprocess.DEVNULL)
            read_until(process, "Saving to")
            process.send_signal(signal.SIGKILL)
            finish(process)
        # Whatever the moment, the export loads and gives the saved inference.
        check = run_main(tmp_path, "--restore-only")
        assert check.returncode == 0, check.stderr[-2000:]
        assert check.stdout.rstrip().endswith("Inferences match: True")
    # A later full run cleans up whatever the killed runs left.
    assert run_main(tmp_path).returncode == 0
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]


def test_sigterm_during_the_export_leaves_the_previous_one_in_place(full_run, tmp_path, run_main):
    shutil.copytree(str(full_run[0] / "simple"), str(tmp_path / "simple"))
    (tmp_path / "simple" / "variables" / "marker").write_bytes(b"the previous export")
    export = snapshot(str(tmp_path / "simple"))
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    assert snapshot(str(tmp_path / "simple")) == export  # A stopped run does not export.
    process, printed = start_paused(tmp_path, "export written", 1, "--checkpoint-dir", "ckpt")
    assert printed.rstrip().endswith("Saving to simple")
    process.send_signal(signal.SIGTERM)
    out, err = finish(process)
    assert process.returncode == 143
    assert "Traceback" not in err and out == ""
    assert script_stderr(err) == [
        (
            "interrupted by SIGTERM: ckpt/model.ckpt-4 (step 4 of 4) is complete, and the same "
            "command resumes from it; the previous export is in place in simple"
        )
    ]
    # The previous export, untouched, and nothing of the new one left.
    assert snapshot(str(tmp_path / "simple")) == export
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt", "simple"]
    # Without checkpoints, the line says that training starts over.
    process, _ = start_paused(tmp_path, "export written", 1)
    process.send_signal(signal.SIGINT)
    _, err = finish(process)
    assert process.returncode == 130
    assert script_stderr(err) == [
        (
            "interrupted by SIGINT: the previous export is in place in simple; "
            "without --checkpoint-dir, the same command trains from the start"
        )
    ]
    assert snapshot(str(tmp_path / "simple")) == export


def test_an_interrupt_inside_tensorflow_waits_until_the_run_is_out_of_it(full_run, tmp_path):
    # Raised inside TensorFlow's code, as simple_save builds its Saver, the
    # exception once came out mangled, or left an export without a variable.
    shutil.copytree(str(full_run[0] / "simple"), str(tmp_path / "simple"))
    export = snapshot(str(tmp_path / "simple"))
    process, printed = start_paused(tmp_path, "export building", 1)
    assert printed.rstrip().endswith("Saving to simple")
    process.send_signal(signal.SIGINT)  # While the run waits inside TensorFlow...
    (tmp_path / "go").write_bytes(b"")  # ...which it then finishes, and stops after.
    out, err = finish(process)
    assert process.returncode == 130, err[-2000:]
    assert out.startswith("BUILT\n"), out  # The Saver was built whole, the signal notwithstanding.
    assert "Traceback" not in err
    assert script_stderr(err) == [
        (
            "interrupted by SIGINT: the previous export is in place in simple; "
            "without --checkpoint-dir, the same command trains from the start"
        )
    ]
    assert snapshot(str(tmp_path / "simple")) == export
    assert sorted(os.listdir(str(tmp_path))) == ["go", "simple"]


def test_two_signals_during_the_clean_up_are_one_line_and_a_clean_folder(tmp_path):
    # Interrupted while it removes its staging folder, after the swap, by
    # SIGINT and then SIGTERM at once: it finishes the clean-up, then stops.
    process, printed = start_paused(tmp_path, "clean-up", 1)
    assert printed.rstrip().endswith("Saving to simple")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)  # Ignored: the run is already stopping.
    (tmp_path / "go").write_bytes(b"")
    out, err = finish(process)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and out == ""
    assert script_stderr(err) == ["interrupted by SIGINT: simple holds this run's export"]
    assert sorted(os.listdir(str(tmp_path))) == ["go", "simple"]


def test_a_full_run_cleans_up_after_killed_runs(full_run, tmp_path, run_main):
    # What killed runs left: a half-done swap (the export out of place), and a
    # staging folder with a new export half written. Their processes are gone.
    swap = tmp_path / ".simple.save_and_restore-999999998-abc"
    shutil.copytree(str(full_run[0] / "simple"), str(swap / "old"))
    shutil.copytree(str(full_run[0] / "simple"), str(swap / "new"))
    half = tmp_path / ".simple.save_and_restore-999999999-def" / "new"
    half.mkdir(parents=True)
    (half / "saved_model.pb").write_bytes(b"half")
    result = run_main(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]


def test_a_swap_cut_between_its_two_renames_is_repaired(full_run, tmp_path, run_main):
    folder, _ = full_run
    export_dir = str(tmp_path / "simple")
    # What a run killed between the renames leaves: no export, the old one and
    # the complete new one in its staging folder, and a process that is gone.
    staging = tmp_path / ".simple.save_and_restore-999999999-abc"
    shutil.copytree(str(folder / "simple"), str(staging / "old"))
    shutil.copytree(str(folder / "simple"), str(staging / "new"))
    new_files = snapshot(str(staging / "new"))
    result = run_main(tmp_path, "--restore-only")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]
    assert snapshot(export_dir) == new_files


def test_a_staging_folder_of_a_live_run_is_left_alone(sar, tmp_path):
    staging = tmp_path / f".simple.save_and_restore-{os.getpid()}-abc"
    staging.mkdir()
    sar.clean_up_killed_runs(str(tmp_path / "simple"))
    assert staging.exists()
    sar.clean_up_killed_runs(str(tmp_path / "other"))  # Another export's name.
    assert staging.exists()


def test_restore_only_on_a_missing_path(tmp_path, run_main):
    assert_refused(run_main(tmp_path, "--restore-only"), "simple does not exist")
    (tmp_path / "model").write_bytes(b"")
    args = ["--restore-only", "--export-dir", "model"]
    assert_refused(run_main(tmp_path, *args), "model is not a directory")


def test_the_safety_page_shows_what_a_missing_export_prints(tmp_path, run_main):
    (block,) = code_blocks("Bad input: one line, exit status 2", "text")
    # Run from another folder: the line names where it looked.
    cd, command, *printed = block.replace("/home/you/work", str(tmp_path)).splitlines()
    assert cd == f"$ cd {tmp_path}"
    assert command.startswith("$ python3 save_and_restore.py ")
    result = run_main(tmp_path, *command.split()[3:])
    assert result.returncode == 2
    assert result.stdout.splitlines() + script_stderr(result.stderr) == printed


def test_restore_only_on_an_empty_folder(tmp_path, run_main):
    (tmp_path / "simple").mkdir()
    assert_refused(run_main(tmp_path, "--restore-only"), "simple is empty")


def broken_copy(full_run, tmp_path):
    folder, _ = full_run
    copy = tmp_path / "simple"
    shutil.copytree(str(folder / "simple"), str(copy))
    return copy


def test_restore_only_on_an_export_without_saved_model_pb(full_run, tmp_path, run_main):
    (broken_copy(full_run, tmp_path) / "saved_model.pb").unlink()
    assert_refused(run_main(tmp_path, "--restore-only"), "simple has no saved_model.pb")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_restore_only_on_a_corrupt_saved_model_pb(full_run, tmp_path, run_main, damage):
    pb = broken_copy(full_run, tmp_path) / "saved_model.pb"
    if damage == "truncated":
        pb.write_bytes(pb.read_bytes()[:100])
    else:
        pb.write_bytes(b"\xff" * 1000)
    assert_refused(run_main(tmp_path, "--restore-only"), "cannot load simple", "saved_model.pb")


def test_restore_only_on_damaged_variables_in_a_folder_named_with_braces(
    full_run, tmp_path, run_main
):
    folder, _ = full_run
    export = tmp_path / "my{export}"
    shutil.copytree(str(folder / "simple"), str(export))
    (data,) = (export / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:30])
    line = assert_refused(run_main(tmp_path, "--restore-only", "--export-dir", "my{export}"))
    assert line == "error: cannot load my{export}: Read less bytes than requested"


def test_restore_only_on_an_export_without_variables(full_run, tmp_path, run_main):
    shutil.rmtree(str(broken_copy(full_run, tmp_path) / "variables"))
    assert_refused(run_main(tmp_path, "--restore-only"), "simple has no variables/")


def test_restore_only_on_a_corrupt_expectation(full_run, tmp_path, run_main):
    expected = broken_copy(full_run, tmp_path) / "assets.extra" / "expected_logits.npy"
    whole = expected.read_bytes()
    for damaged in (b"not numpy", b"", whole[:100], whole[: len(whole) // 2]):
        expected.write_bytes(damaged)  # Garbage, empty, a cut header, cut data.
        line = assert_refused(run_main(tmp_path, "--restore-only"), "cannot read")
        assert "expected_logits.npy" in line
    expected.unlink()
    assert_refused(run_main(tmp_path, "--restore-only"), "expected_logits.npy is missing")


def save_foreign_model(sar, export_dir, tags=("serve",), inputs=("x",)):
    """Writes a small SavedModel that is not this tutorial's."""
    tf = sar.tf
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        placeholders = {name: tf.placeholder(tf.float32, name=name) for name in inputs}
        weight = tf.Variable(2.0)
        output = tf.add_n(list(placeholders.values())) * weight
        sess.run(tf.global_variables_initializer())
        builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            placeholders, {"logits": output}
        )
        builder.add_meta_graph_and_variables(
            sess, list(tags), signature_def_map={"serving_default": signature}
        )
        builder.save()


def test_restore_only_on_a_savedmodel_without_the_serve_tag(sar, tmp_path, run_main):
    save_foreign_model(sar, str(tmp_path / "simple"), tags=("train",))
    assert_refused(run_main(tmp_path, "--restore-only"), "cannot load simple", "'serve'")


def test_restore_only_on_a_savedmodel_without_the_expected_signature(sar, tmp_path, run_main):
    save_foreign_model(sar, str(tmp_path / "simple"))
    assert_refused(
        run_main(tmp_path, "--restore-only"),
        "signature lacks batch_size_ph, features_data_ph, labels_data_ph",
        "not an export of this tutorial",
    )


def test_restore_only_on_a_savedmodel_without_dataset_init(sar, tmp_path, run_main):
    keys = ("batch_size_ph", "features_data_ph", "labels_data_ph")
    save_foreign_model(sar, str(tmp_path / "simple"), inputs=keys)
    line = assert_refused(run_main(tmp_path, "--restore-only"), "simple has no dataset_init")
    assert "not an export of this tutorial" in line


@pytest.mark.parametrize("value", ["0", "-3", "abc", "2.5", ""])
def test_batch_size_must_be_a_positive_integer(tmp_path, run_main, value):
    line = assert_refused(run_main(tmp_path, "--restore-only", "--batch-size", value))
    assert f"--batch-size: must be a positive integer, not {value!r}" in line
    assert os.listdir(str(tmp_path)) == []


# What the script answers before TensorFlow's import, which takes seconds.
BEFORE_IMPORT = {
    ("--bogus",): "error: unrecognized arguments: --bogus (see --help)",
    (
        "--batch-size",
        "0",
    ): "error: argument --batch-size: must be a positive integer, not '0' (see --help)",
    ("--max-steps", "2"): (
        "error: --max-steps needs --checkpoint-dir, where the next run resumes from (see --help)"
    ),
    ("--restore-only", "--checkpoint-dir", "ckpt"): (
        "error: --checkpoint-dir is for training: not allowed with --restore-only (see --help)"
    ),
}


def test_help_and_argument_errors_come_before_tensorflow(tmp_path, no_heavy_imports):
    for flag in ("--help", "-h"):
        helped = run_light(no_heavy_imports, tmp_path, SCRIPT, flag)
        assert (helped.returncode, helped.stderr) == (0, ""), helped
        assert helped.stdout.startswith("usage: save_and_restore.py [-h]"), helped.stdout
        assert "--checkpoint-dir CHECKPOINT_DIR" in helped.stdout
    for args, line in BEFORE_IMPORT.items():
        refused = run_light(no_heavy_imports, tmp_path, SCRIPT, *args)
        assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", line + "\n"), args
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_once_the_run_is_over_changes_nothing(full_run, tmp_path, signum):
    # Paused once the export is in place and checked, the verdict to print.
    process, printed = start_paused(tmp_path, "run over", 1)
    assert full_run[1].stdout.startswith(printed) and "Restored values" in printed
    assert "Inferences match" not in printed
    process.send_signal(signum)
    (tmp_path / "go").write_text("")
    out, err = finish(process)
    # The run ends as a finished one: all its output, exit 0, its export in place.
    assert process.returncode == 0, err
    assert printed + out == full_run[1].stdout
    assert script_stderr(err) == []
    assert np.array_equal(np.load(str(tmp_path / EXPECTED)), np.load(str(full_run[0] / EXPECTED)))
    assert sorted(os.listdir(str(tmp_path))) == ["go", "simple"]


def test_an_unknown_argument_is_one_line(tmp_path, run_main):
    assert_refused(run_main(tmp_path, "--bogus"), "unrecognized arguments: --bogus")


def test_export_dir_in_a_missing_folder(tmp_path, run_main):
    line = assert_refused(run_main(tmp_path, "--export-dir", "nowhere/simple"))
    assert "nowhere/simple" in line and "does not exist" in line
    assert os.listdir(str(tmp_path)) == []


def test_export_dir_in_a_folder_that_cannot_be_written(tmp_path, run_main):
    # /proc refuses new entries even to root, unlike a folder with chmod 0o500.
    line = assert_refused(run_main(tmp_path, "--export-dir", "/proc/simple"))
    assert "cannot write in /proc" in line


def test_a_normal_run_leaves_no_temporary_folder(full_run):
    folder, _ = full_run
    assert sorted(os.listdir(str(folder))) == ["simple"]
    expected = np.load(str(folder / "simple" / "assets.extra" / "expected_logits.npy"))
    assert expected.shape == (64, 5)


def test_restore_only_and_show_pitfall_do_not_mix(tmp_path, run_main):
    result = run_main(tmp_path, "--restore-only", "--show-pitfall")
    assert_refused(result, "--show-pitfall: not allowed with argument --restore-only")
    assert os.listdir(str(tmp_path)) == []


def test_export_dir_that_is_the_current_folder_is_refused(full_run, tmp_path, run_main):
    export = broken_copy(full_run, tmp_path)  # A complete export, to run in.
    before = snapshot(str(tmp_path))
    for export_dir in (".", "..", str(export)):
        line = assert_refused(run_main(export, "--export-dir", export_dir), "run from its parent")
        assert f"cannot export to {export_dir}: it is the folder you run in" in line
    assert snapshot(str(tmp_path)) == before
    # Restoring from it, which renames nothing, works.
    assert run_main(export, "--restore-only", "--export-dir", ".").returncode == 0


def test_the_swap_waits_for_a_run_that_holds_the_lock(full_run, tmp_path):
    import fcntl

    shutil.copytree(str(full_run[0] / "simple"), str(tmp_path / "simple"))
    before = snapshot(str(tmp_path / "simple"))
    folder = os.open(str(tmp_path), os.O_RDONLY)
    fcntl.flock(folder, fcntl.LOCK_EX)  # As another run swapping its export would.
    try:
        process = fork_script(tmp_path)
        read_until(process, "Saving to")
        time.sleep(0.5)
        # The new export is written, but waits to be swapped in.
        assert process.poll() is None
        assert snapshot(str(tmp_path / "simple")) == before
    finally:
        os.close(folder)
    out, err = finish(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert out.rstrip().endswith("Inferences match: True")
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]


def test_two_runs_at_once_on_one_export_both_finish(tmp_path, run_main):
    runs = [fork_script(tmp_path) for _ in range(2)]
    for process in runs:
        out, err = finish(process)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        assert out.rstrip().endswith("Inferences match: True")
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]
    assert run_main(tmp_path, "--restore-only").returncode == 0


def test_a_refused_max_steps_writes_nothing_not_even_for_a_moment(
    tmp_path, run_main, sar, monkeypatch
):
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    made = []
    mkdtemp = sar.tempfile.mkdtemp
    monkeypatch.setattr(sar.tempfile, "mkdtemp", lambda **kw: made.append(kw) or mkdtemp(**kw))
    before = snapshot(str(tmp_path))
    line = assert_refused(run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "2"))
    assert "--max-steps 2 is behind" in line
    assert made == [] and snapshot(str(tmp_path)) == before
    # A run that passes its checks makes its staging folder there, and only then.
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt").returncode == 0
    assert [kw["dir"] for kw in made] == [str(tmp_path)]
