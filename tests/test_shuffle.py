"""--shuffle: each epoch in an order of its own, and a position recomputed from the step."""

import os
import signal
import subprocess

import numpy as np
import pytest
from conftest import (
    EXPECTED,
    FINAL,
    after,
    assert_same_output,
    code_blocks,
    finish,
    fork_script,
    from_saving,
    read_until,
    run_forked,
    training_lines,
)
from test_resume import transcript
from test_safety import assert_refused, snapshot

SHUFFLED = "When the pipeline shuffles"


def checkpoint_size(prefix):
    """The bytes of one checkpoint: its index and data files."""
    folder, name = os.path.split(prefix)
    return sum(
        os.path.getsize(os.path.join(folder, f))
        for f in os.listdir(folder)
        if f.startswith(name + ".")
    )


@pytest.mark.heavy(10)
def test_shuffle_resumes_as_if_never_stopped(full_run, tmp_path, run_main, sar):
    # The uninterrupted --shuffle run, twice: the same every run.
    (tmp_path / "whole").mkdir()
    whole = run_main(tmp_path / "whole", "--shuffle")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert whole.stdout.rstrip().endswith("Inferences match: True")
    assert run_main(tmp_path / "whole", "--shuffle").stdout == whole.stdout
    # Other batches: other lines than the plain run's, at every step.
    plain = training_lines(full_run[1].stdout)
    for shuffled, unshuffled in zip(training_lines(whole.stdout), plain):
        assert shuffled.split("|")[0] == unshuffled.split("|")[0]
        assert shuffled != unshuffled
    expected = np.load(str(tmp_path / "whole" / EXPECTED))

    # Stopped after each step, then resumed: what the uninterrupted run did
    # (after step 2 just below, as the page shows it).
    for steps in (1, 3):
        folder = tmp_path / str(steps)
        folder.mkdir()
        args = ["--shuffle", "--checkpoint-dir", "ckpt"]
        stopped = run_main(folder, *args, "--max-steps", str(steps))
        assert stopped.returncode == 0, stopped.stderr
        assert training_lines(stopped.stdout) == training_lines(whole.stdout)[:steps]
        resumed = run_main(folder, *args)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.startswith(f"Resumed from ckpt/model.ckpt-{steps}: step {steps}")
        assert training_lines(resumed.stdout) == training_lines(whole.stdout)[steps:]
        assert from_saving(resumed.stdout) == from_saving(whole.stdout)
        assert np.array_equal(np.load(str(folder / EXPECTED)), expected)

    # The page's transcript: a stop at step 2, and the resume, in a new process.
    (stop, resume), (refused,) = [transcript(block) for block in code_blocks(SHUFFLED, "text")]
    # In an export folder of its own: simple/, which other pages read, stays the plain run's.
    resume_args = ["--shuffle", "--checkpoint-dir", "ckpt_shuffled", "--export-dir", "shuffled"]
    assert stop[0] == resume_args + ["--max-steps", "2"]
    assert resume[0] == resume_args
    folder = tmp_path / "page"
    folder.mkdir()
    assert_same_output(stop[1], run_main(folder, *stop[0]).stdout)
    result = run_forked(folder, *resume[0])  # A process of its own, as a user's is.
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_output(resume[1], result.stdout)
    assert training_lines(result.stdout) == training_lines(whole.stdout)[2:]
    assert from_saving(result.stdout) == from_saving(whole.stdout).replace("simple", "shuffled")
    assert not (folder / "simple").exists()
    shuffled_expected = os.path.join("shuffled", "assets.extra", "expected_logits.npy")
    assert np.array_equal(np.load(str(folder / shuffled_expected)), expected)

    # The checkpoint holds no iterator state, and is smaller than a plain one's.
    ckpt = str(folder / "ckpt_shuffled")
    names = sar.tf.train.NewCheckpointReader(os.path.join(ckpt, "model.ckpt-4"))
    assert not [name for name in names.get_variable_to_shape_map() if "Iterator" in name]
    (tmp_path / "plain").mkdir()
    plain_ckpt = ["--checkpoint-dir", "ckpt", "--max-steps", "1"]
    assert run_main(tmp_path / "plain", *plain_ckpt).returncode == 0
    plain_size = checkpoint_size(str(tmp_path / "plain" / "ckpt" / "model.ckpt-1"))
    assert checkpoint_size(os.path.join(ckpt, "model.ckpt-4")) < plain_size

    # The other --shuffle setting is refused, both ways, and nothing is touched.
    assert refused[0] == ["--checkpoint-dir", "ckpt_shuffled"]
    before = snapshot(str(folder))
    line = assert_refused(run_main(folder, *refused[0]), "written with --shuffle")
    assert_same_output(refused[1], line + "\n")
    assert snapshot(str(folder)) == before
    before = snapshot(str(tmp_path / "plain"))
    line = assert_refused(run_main(tmp_path / "plain", "--shuffle", "--checkpoint-dir", "ckpt"))
    assert "was written without --shuffle: resume it without --shuffle, or start anew" in line
    assert snapshot(str(tmp_path / "plain")) == before

    # Killed mid-training, some while a checkpoint was written, then resumed.
    folder = tmp_path / "killed"
    folder.mkdir()
    process = fork_script(
        folder, "--shuffle", "--checkpoint-dir", "ckpt", stderr=subprocess.DEVNULL
    )
    read_until(process, "Epoch 1, batch 0")  # Whatever the kill then lands on.
    process.send_signal(signal.SIGKILL)
    finish(process)
    resumed = run_main(folder, "--shuffle", "--checkpoint-dir", "ckpt")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("Resumed from ckpt/model.ckpt-")
    assert from_saving(resumed.stdout) == from_saving(whole.stdout)
    assert after(resumed.stdout, FINAL) == after(whole.stdout, FINAL)
    assert np.array_equal(np.load(str(folder / EXPECTED)), expected)


def read_order(sar, sess, init_op, feed_dict, labels):
    """Initializes the iterator with feed_dict; returns the samples' numbers in the order read."""
    return [int(n) for batch in sar.iterate(sess, init_op, feed_dict, labels) for n in batch[:, 0]]


def test_a_fixed_seed_replays_one_order_and_the_scripts_epochs_differ(sar):
    tf = sar.tf
    features, labels = sar.make_data()
    labels = labels.copy()
    labels[:, 0] = np.arange(len(labels))  # Each sample's number, to follow the order.
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        tf.set_random_seed(sar.SEED)
        placeholders, _, init_op, _, next_labels = sar.build_input_pipeline(shuffle=True)
        feed_dict = sar.make_feed(placeholders, features, labels, sar.BATCH_SIZE)
        # Unfed, the shuffle placeholders keep the original order (the export's).
        assert read_order(sar, sess, init_op, feed_dict, next_labels) == list(range(64))
        train_feed = dict(feed_dict)
        train_feed.update(sar.shuffle_feed(placeholders))
        # The trap: the same seed at each initialization replays the same order.
        first = read_order(sar, sess, init_op, train_feed, next_labels)
        assert sorted(first) == list(range(64)) and first != list(range(64))
        assert read_order(sar, sess, init_op, train_feed, next_labels) == first
        # The script's epochs: a seed each, so an order each; and a resume
        # mid-epoch skips the batches of the epoch already read.
        epochs = [sar.position_feed(train_feed, step) for step in (0, 2, 3)]
        epoch_0, epoch_1, resumed = [read_order(sar, sess, init_op, f, next_labels) for f in epochs]
        assert epoch_0 == first and epoch_1 != epoch_0 and sorted(epoch_1) == list(range(64))
        assert resumed == epoch_1[sar.BATCH_SIZE :]
