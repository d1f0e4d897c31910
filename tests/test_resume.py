"""Resuming training where it stopped: --checkpoint-dir, --max-steps, kills."""

import glob
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import (
    EXPECTED,
    FINAL,
    Result,
    after,
    assert_same_output,
    code_blocks,
    finish,
    fork_script,
    from_saving,
    read,
    read_until,
    run_forked,
    script_stderr,
    start_paused,
    start_script,
    training_lines,
)
from test_safety import assert_refused, snapshot

STEPS = 4  # 2 epochs of 2 batches.


def assert_same_as_uninterrupted(folder, result, full_run, from_step):
    """The run printed and exported what the uninterrupted run did, from from_step on."""
    full_folder, full = full_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert training_lines(result.stdout) == training_lines(full.stdout)[from_step:]
    # From the "Saving" line on, the output is the uninterrupted run's, verbatim.
    assert from_saving(result.stdout) == from_saving(full.stdout)
    assert np.array_equal(np.load(str(folder / EXPECTED)), np.load(str(full_folder / EXPECTED)))


def test_a_checkpointed_run_prints_and_exports_what_a_plain_run_does(full_run, tmp_path, run_main):
    result = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    assert "Resumed" not in result.stdout
    assert result.stdout == full_run[1].stdout
    assert_same_as_uninterrupted(tmp_path, result, full_run, 0)
    state = read(str(tmp_path / "ckpt" / "checkpoint"))
    assert f'model_checkpoint_path: "model.ckpt-{STEPS}"' in state
    # Weights without the graph: what examples/upgrade_export.py says of it.
    from test_upgrade import upgrade_in_process

    refused = upgrade_in_process(tmp_path, "ckpt", "new")
    prefix = os.path.join("ckpt", f"model.ckpt-{STEPS}")
    assert refused.startswith(f"upgrade_export.py: {prefix} holds weights but not the graph (no ")
    assert "save_and_restore.py exports itself" in refused and "\n" not in refused
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt", "simple"]


@pytest.mark.parametrize("max_steps", [1, 2, 3])
def test_stopped_at_each_step_then_resumed_gives_the_uninterrupted_result(
    full_run, tmp_path, run_main, max_steps
):
    stopped = run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", str(max_steps))
    assert stopped.returncode == 0, stopped.stderr
    assert training_lines(stopped.stdout) == training_lines(full_run[1].stdout)[:max_steps]
    assert f"Stopped as --max-steps asked, after step {max_steps} of {STEPS}." in (stopped.stdout)
    assert "without --max-steps to resume from" in stopped.stdout
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt"]  # No export yet.
    # Stopping again at the same step trains no further.
    again = run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", str(max_steps))
    assert training_lines(again.stdout) == []
    resumed = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    epoch, batch = divmod(max_steps, 2)
    first = resumed.stdout.splitlines()[0]
    assert first == "Resumed from {}: step {}, epoch {}, batch {}".format(
        os.path.join("ckpt", f"model.ckpt-{max_steps}"), max_steps, epoch, batch
    )
    assert_same_as_uninterrupted(tmp_path, resumed, full_run, max_steps)


def test_max_steps_past_the_end_is_a_full_run(full_run, tmp_path, run_main):
    result = run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", str(STEPS))
    assert_same_as_uninterrupted(tmp_path, result, full_run, 0)
    # A run after the end resumes at the end: no training, the same export.
    again = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    assert again.stdout.splitlines()[0].endswith("step 4, epoch 2, batch 0")
    assert_same_as_uninterrupted(tmp_path, again, full_run, STEPS)


def transcript(block):
    """A docs transcript: [(arguments, expected output), ...]."""
    runs = re.split(r"^\$ python3 save_and_restore\.py (.*)\n", block, flags=re.MULTILINE)
    assert runs[0] == "", runs
    return [(runs[i].split(), runs[i + 1]) for i in range(1, len(runs), 2)]


def test_docs_show_what_stopping_and_resuming_print(tmp_path, run_main):
    stop_and_resume, refusal = code_blocks("Stop, then resume", "text")
    (stop, resume), (behind,) = transcript(stop_and_resume), transcript(refusal)
    assert [stop[0], behind[0], resume[0]] == [
        ["--checkpoint-dir", "ckpt", "--max-steps", "3"],
        ["--checkpoint-dir", "ckpt", "--max-steps", "2"],
        ["--checkpoint-dir", "ckpt"],
    ]
    # In the page's order. The resumed run is a process of its own, as a user's
    # is; the others may run here.
    result = run_main(tmp_path, *stop[0])
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_output(stop[1], result.stdout)
    result = run_forked(tmp_path, *resume[0])
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_output(resume[1], result.stdout)
    # --max-steps behind the checkpoint: one line, and nothing trained or written.
    before = snapshot(str(tmp_path))
    line = assert_refused(run_main(tmp_path, *behind[0]), "--max-steps 2 is behind")
    assert_same_output(behind[1], line + "\n")
    assert snapshot(str(tmp_path)) == before


def test_the_folder_keeps_two_checkpoints_across_resumed_runs(tmp_path, run_main):
    for args in (["--max-steps", "1"], ["--max-steps", "2"], ["--max-steps", "3"], []):
        assert run_main(tmp_path, "--checkpoint-dir", "ckpt", *args).returncode == 0
    steps = {name.split(".")[1] for name in os.listdir(str(tmp_path / "ckpt")) if "ckpt-" in name}
    assert steps == {"ckpt-3", "ckpt-4"}
    state = read(str(tmp_path / "ckpt" / "checkpoint"))
    assert re.findall(r'all_model_checkpoint_paths: "(.*)"', state) == [
        "model.ckpt-3",
        "model.ckpt-4",
    ]


def partial_checkpoints(checkpoint_dir):
    """What a save cut short left: temporary files, or a checkpoint newer than the named one."""
    names = os.listdir(checkpoint_dir)
    state = os.path.join(checkpoint_dir, "checkpoint")
    named = 0
    if os.path.exists(state):
        named = int(re.search(r'model_checkpoint_path: ".*-(\d+)"', read(state)).group(1))
    steps = [int(m.group(1)) for m in map(re.compile(r"model\.ckpt-(\d+)\.").match, names) if m]
    return [name for name in names if "tempstate" in name] + [s for s in steps if s > named]


def test_sigkill_at_any_moment_resumes_to_the_same_result(full_run, tmp_path, run_main):
    # First, inside a save, by construction: the run waits there to be killed,
    # with the second checkpoint's files written and not yet named.
    mid_save = tmp_path / "mid_save"
    mid_save.mkdir()
    process, printed = start_paused(mid_save, "checkpoint written", 2, "--checkpoint-dir", "ckpt")
    process.send_signal(signal.SIGKILL)
    finish(process)
    assert set(partial_checkpoints(str(mid_save / "ckpt"))) == {2}
    resumed = run_main(mid_save, "--checkpoint-dir", "ckpt")
    assert resumed.stdout.splitlines()[0].endswith("step 1, epoch 0, batch 1")
    assert_same_as_uninterrupted(mid_save, resumed, full_run, 1)
    # Then wherever the kill lands after a step's line (the export's kills are
    # in test_safety): the run resumes from a step that was done, no further.
    folder = tmp_path / "anywhere"
    folder.mkdir()
    process = fork_script(folder, "--checkpoint-dir", "ckpt", stderr=subprocess.DEVNULL)
    printed = read_until(process, "Epoch 0, batch 1")
    process.send_signal(signal.SIGKILL)
    finish(process)
    resumed = run_main(folder, "--checkpoint-dir", "ckpt")
    match = re.match(r"Resumed from .*: step (\d+),", resumed.stdout)
    from_step = int(match.group(1)) if match else 0
    assert from_step <= len(training_lines(printed))
    assert_same_as_uninterrupted(folder, resumed, full_run, from_step)


def test_the_docs_show_what_ctrl_c_prints_and_the_resumed_run(full_run, tmp_path, run_main):
    (block,) = code_blocks("Interrupted: Ctrl-C and kill", "text")
    ((first, interrupted), (again, resumed)) = transcript(block)
    assert first == again == ["--checkpoint-dir", "ckpt"]
    # Ctrl-C once the second checkpoint is complete: the run waits there for it.
    process, printed = start_paused(tmp_path, "checkpoint named", 2, *first)
    process.send_signal(signal.SIGINT)
    out, err = finish(process)
    assert process.returncode == 130
    assert "Traceback" not in err
    (line,) = script_stderr(err)
    assert_same_output(interrupted, printed + out + "^C\n" + line + "\n")
    # Nothing but the two complete checkpoints: no export, no staging folder.
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt"]
    result = run_main(tmp_path, *again)
    assert_same_output(resumed, result.stdout)
    assert_same_as_uninterrupted(tmp_path, result, full_run, 2)


def interrupted(process, signum):
    """Sends signum to the process; returns its Result, stdout and stderr whole."""
    process.send_signal(signum)
    out, err = finish(process)
    return Result(process.returncode, out, err)


def assert_one_line_or_done(result, signum):
    """The run either ended on the signal with one line, or had finished before it came."""
    assert "Traceback" not in result.stderr
    if result.returncode == 0:  # The signal came after the run was done.
        assert result.stdout.rstrip().endswith("Inferences match: True")
        return None
    assert result.returncode == 128 + signum, result.stderr[-2000:]
    (line,) = script_stderr(result.stderr)
    assert line.startswith(f"interrupted by {signal.Signals(signum).name}"), line
    return line


def handles_signals(process):
    """Waits until the script handles SIGTERM itself: from then on, it says what it leaves."""
    caught = 0
    while not caught >> (signal.SIGTERM - 1) & 1:
        assert process.poll() is None
        status = read(f"/proc/{process.pid}/status")
        caught = int(re.search(r"^SigCgt:\s*(\w+)", status, re.MULTILINE).group(1), 16)
        time.sleep(0.01)


@pytest.mark.heavy(5)
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_interrupted_at_any_moment_says_what_it_leaves_and_resumes(full_run, tmp_path, run_main):
    # Wherever each signal lands: one line, and the same command goes on to the
    # uninterrupted run's final inference, with nothing of the stop left behind.
    for number, (marker, signum) in enumerate(
        [(None, signal.SIGINT), ("Epoch 0, batch 1", signal.SIGTERM), ("Saving", signal.SIGINT)]
    ):
        folder = tmp_path / str(number)
        folder.mkdir()
        if marker is None:  # While TensorFlow is imported, most likely: a new interpreter.
            process = start_script(folder, "--checkpoint-dir", "ckpt")
            handles_signals(process)
        else:
            process = fork_script(folder, "--checkpoint-dir", "ckpt")
            read_until(process, marker)
        line = assert_one_line_or_done(interrupted(process, signum), signum)
        if line and "before anything was written" in line:
            assert os.listdir(str(folder)) == []
        elif line:
            # The checkpoint it names is the one the next run resumes from.
            path = sar_latest(folder)
            assert (f"{path} (step" in line) if path else ("no checkpoint was complete" in line)
        resumed = run_main(folder, "--checkpoint-dir", "ckpt")
        assert after(resumed.stdout, FINAL) == after(full_run[1].stdout, FINAL)
        assert sorted(os.listdir(str(folder))) == ["ckpt", "simple"]


def sar_latest(folder):
    """The checkpoint the `checkpoint` file in folder/ckpt names, as the script prints it."""
    state = folder / "ckpt" / "checkpoint"
    if not state.exists():
        return None
    name = re.search(r'model_checkpoint_path: "(.*)"', read(str(state))).group(1)
    return os.path.join("ckpt", name)


def test_a_half_written_checkpoint_is_never_restored(full_run, tmp_path, run_main):
    stopped = run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "2")
    assert stopped.returncode == 0
    ckpt = tmp_path / "ckpt"
    # What a save killed half-way leaves: the next checkpoint's files, cut
    # short, and the `checkpoint` file still naming the previous one.
    for name in os.listdir(str(ckpt)):
        if name.startswith("model.ckpt-2."):
            data = (ckpt / name).read_bytes()
            (ckpt / name.replace("-2.", "-3.")).write_bytes(data[: len(data) // 2])
    resumed = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    assert resumed.stdout.splitlines()[0].endswith("step 2, epoch 1, batch 0")
    assert_same_as_uninterrupted(tmp_path, resumed, full_run, 2)


def test_without_the_iterators_position_the_resumed_run_trains_another_model(
    full_run, tmp_path, run_main, sar, monkeypatch
):
    # The first trap: a Saver of the variables alone (TensorFlow's default).
    monkeypatch.setattr(sar, "make_checkpoint_saver", lambda iterator: sar.tf.train.Saver())
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    # The script refuses such a checkpoint, as it would a --shuffle one...
    before = snapshot(str(tmp_path))
    assert_refused(run_main(tmp_path, "--checkpoint-dir", "ckpt"), "written with --shuffle")
    assert snapshot(str(tmp_path)) == before
    # ...because without the refusal, TensorFlow resumes from it.
    monkeypatch.setattr(sar, "check_checkpoint", lambda *args: None)
    resumed = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    # No error: the run goes on and even matches its own export...
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.rstrip().endswith("Inferences match: True")
    # ...but it read the epoch's first batch again, and trained another model.
    full = full_run[1].stdout
    assert training_lines(resumed.stdout)[0] != training_lines(full)[3]
    final = np.load(str(tmp_path / EXPECTED))
    assert not np.allclose(final, np.load(str(full_run[0] / EXPECTED)), atol=1e-3)


def build_graph(sar):
    """The script's training graph, in the current default graph, and its iterator's feed."""
    tf = sar.tf
    placeholders, iterator, init_op, model_input, next_labels = sar.build_input_pipeline()
    with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
        logits = sar.build_model(model_input)
        sar.build_train_op(logits, next_labels)
    features, labels = sar.make_data()
    feed = sar.make_feed(placeholders, features, labels, sar.BATCH_SIZE)
    inputs = dict(placeholders, features=model_input)  # The signature's inputs.
    return inputs, iterator, init_op, logits, feed


def test_the_order_initialize_then_restore_is_the_one_that_works(sar, tmp_path):
    tf = sar.tf
    prefix = str(tmp_path / "model.ckpt")
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        _, iterator, init_op, logits, feed = build_graph(sar)
        saver = sar.make_checkpoint_saver(iterator)
        sess.run(tf.global_variables_initializer())
        sess.run(init_op, feed_dict=feed)
        first_batch = sess.run(logits)  # Reads batch 0; the next read is batch 1.
        path = saver.save(sess, prefix, global_step=1, write_meta_graph=False)
        second_batch = sess.run(logits)
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        _, iterator, init_op, logits, feed = build_graph(sar)
        saver = sar.make_checkpoint_saver(iterator)
        # Restoring first fails: the iterator is not initialized yet.
        with pytest.raises(tf.errors.FailedPreconditionError, match="not been initialized"):
            saver.restore(sess, path)
        # Restoring, then initializing: the position is lost, batch 0 comes again.
        sess.run(init_op, feed_dict=feed)
        saver.restore(sess, path)
        sess.run(init_op, feed_dict=feed)
        np.testing.assert_array_equal(sess.run(logits), first_batch)
        # Initializing, then restoring: batch 1 comes next.
        sess.run(init_op, feed_dict=feed)
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(logits), second_batch)


def test_the_saveable_in_the_global_collection_leaks_into_the_export(sar, tmp_path):
    tf = sar.tf
    export_dir = str(tmp_path / "leaky")
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        inputs, iterator, init_op, logits, feed = build_graph(sar)
        saveable = sar.make_saveable_from_iterator(iterator)
        tf.add_to_collection(tf.GraphKeys.SAVEABLE_OBJECTS, saveable)  # As TF's guide does.
        sess.run(tf.global_variables_initializer())
        sess.run(init_op, feed_dict=feed)
        tf.saved_model.simple_save(sess, export_dir, inputs, {"logits": logits})
    leaked = pytest.raises(tf.errors.FailedPreconditionError, match="DeserializeIterator")
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess, leaked:
        tf.saved_model.loader.load(sess, ["serve"], export_dir)


def test_a_plain_run_never_builds_the_iterators_saveable(tmp_path, run_main, sar, monkeypatch):
    def refuse(iterator):
        raise AssertionError("a run without --checkpoint-dir built the saveable")

    monkeypatch.setattr(sar, "make_saveable_from_iterator", refuse)
    result = run_main(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(str(tmp_path))) == ["simple"]


def foreign_checkpoint(sar, checkpoint_dir):
    """Writes a checkpoint named as the script names its own, of another graph."""
    tf = sar.tf
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        tf.Variable(1.0, name="w")
        tf.train.get_or_create_global_step()
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, os.path.join(checkpoint_dir, "model.ckpt"), global_step=7)


@pytest.mark.parametrize(
    "kind",
    [
        "file",
        "other files",
        "other graph",
        "unreadable state",
        "empty state",
        "damaged",
        "cut data",
    ],
)
def test_a_checkpoint_dir_that_is_not_ours_is_refused_and_left_as_it_is(
    tmp_path, run_main, sar, kind
):
    ckpt = tmp_path / "ckpt"
    if kind == "file":
        ckpt.write_bytes(b"my notes\n")
        words = ["ckpt is not a folder"]
    else:
        ckpt.mkdir()
        if kind == "other files":
            (ckpt / "thesis.tex").write_bytes(b"\\documentclass{article}\n")
            words = ["holds files that are not this script's checkpoints (thesis.tex)"]
        elif kind == "other graph":
            foreign_checkpoint(sar, str(ckpt))
            words = ["cannot resume from", "model.ckpt-7", "not a checkpoint of this script"]
        elif kind in ("unreadable state", "empty state"):
            state = b"not a checkpoint state {{{\n" if kind == "unreadable state" else b""
            (ckpt / "checkpoint").write_bytes(state)
            words = ["checkpoint names no checkpoint that exists"]
        else:
            assert (
                run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "1").returncode == 0
            )
            if kind == "damaged":
                index = ckpt / "model.ckpt-1.index"
                index.write_bytes(index.read_bytes()[:50])
                words = ["cannot resume from", "model.ckpt-1: it is damaged", "(not an sstable"]
            else:
                (data,) = ckpt.glob("model.ckpt-1.data-*")
                data.write_bytes(data.read_bytes()[:100])
                words = ["model.ckpt-1: it is damaged", "(Read less bytes than requested)"]
    before = snapshot(str(ckpt))
    assert_refused(run_main(tmp_path, "--checkpoint-dir", "ckpt"), *words)
    assert snapshot(str(ckpt)) == before
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--checkpoint-dir", "ckpt", "--max-steps", "0"], "must be a positive integer, not '0'"),
        (["--checkpoint-dir", "ckpt", "--max-steps", "two"], "not 'two'"),
        (["--max-steps", "2"], "--max-steps needs --checkpoint-dir"),
        (["--restore-only", "--checkpoint-dir", "ckpt"], "not allowed with --restore-only"),
    ],
)
def test_bad_resume_arguments_are_one_line(tmp_path, run_main, args, words):
    assert_refused(run_main(tmp_path, *args), words)
    assert os.listdir(str(tmp_path)) == []


def rewrite_checkpoint(sar, source, prefix, rename):
    """Copies the checkpoint at source to prefix, renaming keys: {old: (new, value)}."""
    tf = sar.tf
    reader = tf.train.NewCheckpointReader(source)
    values = {}
    for name in reader.get_variable_to_shape_map():
        new_name, value = rename[name] if name in rename else (name, reader.get_tensor(name))
        values[new_name] = value
    names = sorted(values)
    with tf.Graph().as_default(), tf.Session() as sess:
        tensors = [tf.constant(values[name]) for name in names]
        sess.run(
            tf.raw_ops.SaveV2(
                prefix=prefix,
                tensor_names=names,
                shape_and_slices=[""] * len(names),
                tensors=tensors,
            )
        )


def test_a_checkpoint_of_another_tensorflow_is_refused_in_one_line(tmp_path, run_main, sar):
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    # What TensorFlow 1.8 writes: the same variables, the iterator's position
    # under its own key, in its own format (here a stand-in).
    (tmp_path / "ck18").mkdir()
    rename = {"IteratorV2:0_STATE": ("Iterator:0-state", np.array([b"TF 1.8 state"]))}
    rewrite_checkpoint(
        sar,
        str(tmp_path / "ckpt" / "model.ckpt-3"),
        str(tmp_path / "ck18" / "model.ckpt-3"),
        rename,
    )
    (tmp_path / "ck18" / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-3"\n')
    before = snapshot(str(tmp_path / "ck18"))
    line = assert_refused(
        run_main(tmp_path, "--checkpoint-dir", "ck18"),
        "written by another TensorFlow version",
        "Iterator:0-state",
    )
    assert snapshot(str(tmp_path / "ck18")) == before
    shown = code_blocks("A checkpoint from another TensorFlow version", "text")[0]
    assert_same_output(shown, line + "\n")


# The keys under which each TensorFlow saves the iterator's position, as measured.
KEYS = {"1.8": "Iterator:0-state", "1.15, 2.0": "IteratorV2:0-state", "2.x": "IteratorV2:0_STATE"}


def test_a_checkpoint_is_foreign_when_its_key_is_not_the_one_this_tensorflow_saves(
    tmp_path, run_main, sar, monkeypatch
):
    assert sar.iterator_state_keys() == [KEYS["2.x"]]  # What TensorFlow 2.21 saves.
    assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    tf = sar.tf
    for writer, key in KEYS.items():
        folder = tmp_path / writer.replace(", ", "_")
        folder.mkdir()
        source = str(tmp_path / "ckpt" / "model.ckpt-3")
        if key == KEYS["2.x"]:
            for name in glob.glob(source + ".*"):
                shutil.copy(name, str(folder))
        else:  # The same variables; the position under the other key (a stand-in).
            rename = {KEYS["2.x"]: (key, np.array([b"another version's state"]))}
            rewrite_checkpoint(sar, source, str(folder / "model.ckpt-3"), rename)
        (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-3"\n')
        for own in KEYS.values():
            # As a TensorFlow that saves under `own` decides, asked for its key.
            monkeypatch.setattr(sar, "iterator_state_keys", lambda own=own: [own])
            with tf.Graph().as_default():
                build_graph(sar)
                if key == own:
                    sar.check_checkpoint(str(folder), None)
                    continue
                with pytest.raises(sar.UsageError) as refused:
                    sar.check_checkpoint(str(folder), None)
            assert "it was written by another TensorFlow version, whose iterator position " in (
                str(refused.value)
            )
            assert f"({key}) TensorFlow {tf.__version__} cannot restore" in str(refused.value)


def test_a_position_this_tensorflow_cannot_restore_under_its_own_key_is_one_line(
    tmp_path, run_main, sar, monkeypatch
):
    # Another pipeline's state under the same key, as another TensorFlow 2
    # version's is: here the script's batches through a take(), stopped at step 3.
    make_initializer = sar.tf.data.Iterator.make_initializer

    def taken(iterator, dataset, name=None):
        return make_initializer(iterator, dataset.take(1000), name=name)

    with monkeypatch.context() as patch:
        patch.setattr(sar.tf.data.Iterator, "make_initializer", taken)
        assert run_main(tmp_path, "--checkpoint-dir", "ckpt", "--max-steps", "3").returncode == 0
    before = snapshot(str(tmp_path))
    result = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # TensorFlow logs the failed restore itself (a warning, and another with the
    # node, unless this process logged one like it lately); then the script's line.
    *logged, line = script_stderr(result.stderr)
    assert "Failed to restore dataset iterator" in logged[0], logged
    assert all(re.match(r"W\d{4} |\s*\[\[\{\{node ", text) for text in logged), logged
    assert line.startswith("error: cannot resume from ckpt/model.ckpt-3: TensorFlow "), line
    assert " cannot restore its iterator position (Failed to restore dataset iterator" in line
    assert "saved by another TensorFlow version: resume with the TensorFlow version that " in line
    assert "Sample value" not in result.stdout
    assert snapshot(str(tmp_path)) == before
    shown = code_blocks("A checkpoint from another TensorFlow version", "text")[1]
    assert_same_output(shown, line + "\n")


def test_a_checkpoint_dir_another_run_trains_in_is_refused(full_run, tmp_path, run_main):
    import fcntl

    # A run that holds the folder, stopped mid-training (SIGSTOP) so that it
    # is still there, however busy the machine, while a second run starts.
    first = fork_script(tmp_path, "--checkpoint-dir", "ckpt")
    printed = read_until(first, "Epoch 0, batch 0")
    first.send_signal(signal.SIGSTOP)
    try:
        second = run_main(tmp_path, "--checkpoint-dir", "ckpt", "--export-dir", "other")
    finally:
        first.send_signal(signal.SIGCONT)
    line = assert_refused(second, "another run is training in --checkpoint-dir ckpt")
    assert line.endswith("wait for it to end, or give another folder")
    out, err = finish(first)
    # The first run went on undisturbed; the second wrote nothing, anywhere.
    assert first.returncode == 0, err[-2000:]
    assert printed + out == full_run[1].stdout
    assert sorted(os.listdir(str(tmp_path))) == ["ckpt", "simple"]
    # The same lock, held by the test as a run holds it: the refused run
    # touches nothing in the folder.
    folder = os.open(str(tmp_path / "ckpt"), os.O_RDONLY)
    fcntl.flock(folder, fcntl.LOCK_EX)
    try:
        before = snapshot(str(tmp_path))
        assert_refused(run_main(tmp_path, "--checkpoint-dir", "ckpt"), "another run is training")
        assert snapshot(str(tmp_path)) == before
    finally:
        os.close(folder)
    # Released, the folder is the next run's: it resumes at the end.
    again = run_main(tmp_path, "--checkpoint-dir", "ckpt")
    assert_same_as_uninterrupted(tmp_path, again, full_run, STEPS)


@pytest.mark.parametrize(
    "args",
    [
        ["--checkpoint-dir", "."],
        ["--checkpoint-dir", "simple"],
        ["--checkpoint-dir", "simple/ckpt"],
        ["--checkpoint-dir", "ckpt", "--export-dir", "ckpt/simple"],
    ],
)
def test_a_checkpoint_dir_in_the_exports_way_is_refused(tmp_path, run_main, args):
    (tmp_path / "ckpt").mkdir()
    before = snapshot(str(tmp_path))
    line = assert_refused(run_main(tmp_path, *args), "is the export's folder, or inside the export")
    assert line.endswith("give a folder of its own")
    assert snapshot(str(tmp_path)) == before
