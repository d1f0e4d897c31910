"""Several workers: examples/several_workers.py, a parameter server and two workers on this machine.

Each scenario runs once for the whole session, by whichever pytest-xdist worker
asks first, and several tests read what it printed and left. No test depends on
timing: a process stops at a step by --max-steps, or waits after a printed line
(PAUSE_HOOK) until the test has killed or interrupted it.
"""

import collections
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    DOCS,
    README,
    ROOT,
    Forked,
    code_blocks,
    doc_section,
    read,
    read_until,
    run_light,
    script_stderr,
    user_environment,
)
from conftest import finish as conftest_finish
from test_safety import snapshot

EXAMPLE = os.path.join(ROOT, "examples", "several_workers.py")
PAGE = os.path.join(DOCS, "several-workers.md")
COMMAND = "python3 examples/several_workers.py"
LOCAL = ["--local-workers", "2", "--checkpoint-dir", "workers_ckpt"]
SAMPLES, BATCH, LAST = 64, 16, 4  # Each worker: 2 epochs of 2 batches of 16 of its shard of 32.
# Not a timing: a safety net, so that a cluster that hangs fails instead of waiting forever.
# A cluster's run: three processes that import TensorFlow at once, then train
# (7 to 9 s here).
CLUSTER_RUN = 120
PEER_TIMEOUT = 30  # What the tests' processes wait for each other: 5 to 10 s here.

# Loaded into every Python process started with PYTHONPATH at its folder, as
# sitecustomize (run first in a forked one): a process that prints a line
# starting with one of PAUSE_AT's markers ("|" between them) then says PAUSED,
# and waits there for a signal: SIGINT or SIGTERM stop it as they would have a
# moment later, SIGKILL kills it between two printed lines, with no step under way.
PAUSE_HOOK = """
import builtins, os, signal

MARKERS = [marker for marker in os.environ.get("PAUSE_AT", "").split("|") if marker]
if MARKERS:
    print_now = builtins.print

    def pausing_print(*args, **kwargs):
        print_now(*args, **kwargs)
        if args and any(str(args[0]).startswith(marker) for marker in MARKERS):
            print_now("PAUSED", flush=True)
            signal.pause()

    builtins.print = pausing_print
"""


def once(tmp_path_factory, worker_id, name, scenario):
    """Runs scenario(folder) once per session, whichever xdist worker asks first: (folder, its result)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # Under pytest-xdist, this session's folder.
        shared = shared.parent
    folder, saved = shared / name, shared / (name + ".json")
    with open(str(shared / (name + ".lock")), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.exists():
            folder.mkdir()
            with processes() as started:
                saved.write_text(json.dumps(scenario(folder, started)))
    return folder, json.loads(saved.read_text())


@contextlib.contextmanager
def processes():
    """A list to start processes with; what they leave running at the end is killed."""
    started = []
    try:
        yield started
    finally:
        for process in started:
            # The whole group: a launcher that ended may have left its processes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def example_environment(**more):
    """A user's environment (conftest.user_environment), without a TF_CONFIG of its own.

    A process waits PEER_TIMEOUT s for another (the program's default is
    300): one whose bookkeeping is broken, or whose peer is gone, ends in
    seconds, in one line, rather than holding the test until its bound.
    """
    env = user_environment(**more)
    env.pop("TF_CONFIG", None)
    env.setdefault("SEVERAL_WORKERS_PEER_TIMEOUT", str(PEER_TIMEOUT))
    return env


def start(started, cwd, *args, tf_config=None, pause_at=None):
    """Starts `python examples/several_workers.py ARGS` in cwd, in a process group of its own.

    One process of a cluster (tf_config) is forked (conftest.Forked), without
    TensorFlow's import; the launcher (--local-workers) is a new interpreter,
    and so are the processes it starts.
    """
    env = example_environment(PYTHONUNBUFFERED="1")
    if pause_at is not None:
        env["PAUSE_AT"] = pause_at
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
        # Forked from a server that imported TensorFlow under the log level the
        # example sets before its imports.
        level = [("TF_CPP_MIN_LOG_LEVEL", "2")]
        process = Forked(
            cwd, [EXAMPLE, *args], env=env, session=True, before=PAUSE_HOOK, preset=level
        )
    else:
        if pause_at is not None:
            hook = os.path.join(str(cwd), "..", "pause_hook")
            os.makedirs(hook, exist_ok=True)
            with open(os.path.join(hook, "sitecustomize.py"), "w") as file:
                file.write(PAUSE_HOOK)
            path = os.pathsep.join([os.path.abspath(hook), env.get("PYTHONPATH", "")])
            env["PYTHONPATH"] = path
        process = subprocess.Popen(
            [sys.executable, EXAMPLE] + list(args),
            cwd=str(cwd),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Its group: the launcher and the processes it starts.
        )
    started.append(process)
    return process


def finish(process, printed=""):
    """Waits for process to end: [exit status, stdout (printed, already read, first), stderr]."""
    out, err = conftest_finish(process, CLUSTER_RUN)
    return [process.returncode, printed + out, err]


def run(cwd, *args, tf_config=None):
    """Runs the example to its end: [exit status, stdout, stderr]."""
    env = example_environment()
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config if isinstance(tf_config, str) else json.dumps(tf_config)
    process = subprocess.Popen(
        [sys.executable, EXAMPLE] + list(args),
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Its group: the launcher and the processes it starts.
    )
    out, err = conftest_finish(process, CLUSTER_RUN)
    return [process.returncode, out, err]


def cluster_config(kind, index, workers=2):
    """A TF_CONFIG for a cluster of one parameter server and workers on free localhost ports."""
    if not hasattr(cluster_config, "hosts"):  # Chosen once, for every process of a cluster.
        sockets = [socket.socket() for _ in range(1 + 3)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        cluster_config.hosts = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
        for sock in sockets:
            sock.close()
    hosts = cluster_config.hosts
    cluster = {"ps": hosts[:1], "worker": hosts[1 : 1 + workers]}
    return {"cluster": cluster, "task": {"type": kind, "index": index}}


# -----------------------------------------------------------------------------
# Reading what the processes print

Step = collections.namedtuple("Step", "worker step epoch batch global_step samples")
STEP = re.compile(
    r"worker (\d+): step (\d+) of 4, epoch (\d), batch (\d) \| global step (\d+) \| samples ([\d ]+)$"
)


def steps(stdout, worker=None):
    """The training steps a run printed, of one worker or of all."""
    found = []
    for line in stdout.splitlines():
        match = STEP.match(line)
        if match:
            numbers = [int(x) for x in match.groups()[:5]]
            found.append(Step(*numbers, samples=tuple(int(x) for x in match.group(6).split())))
    return [step for step in found if worker is None or step.worker == worker]


def shard_batch(worker, batch):
    """The samples a worker reads in a batch of each epoch: its shard is worker, worker + 2, ..."""
    return tuple(range(worker, SAMPLES, 2)[batch * BATCH : (batch + 1) * BATCH])


def assert_each_sample_once_per_epoch(read):
    """read: the steps of one worker over a whole run, stops and restarts included."""
    worker = read[0].worker
    assert sorted(step.step for step in read) == list(range(1, LAST + 1)), read
    for step in read:
        assert divmod(step.step - 1, 2) == (step.epoch, step.batch)
        assert step.samples == shard_batch(worker, step.batch)
    for epoch in (0, 1):
        samples = sorted(s for step in read if step.epoch == epoch for s in step.samples)
        assert samples == list(range(worker, SAMPLES, 2))


def by_process(lines):
    """Lines grouped by the process that printed them, with what varies between runs masked.

    The processes' lines interleave differently on every run, the ports are free
    ones, and asynchronous training gives other global steps and logits.
    """
    grouped = collections.defaultdict(list)
    for line in lines:
        if line in ("PAUSED", ""):  # The test's own PAUSE_HOOK says PAUSED.
            continue
        name = re.match(r"((?:ps|worker) \d+: )?", line).group(0)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"global step \d+", "global step N", line)
        value = re.search(r"(Sample value|Restored values): (\[.*\])$", line)
        if value:
            assert len(value.group(2).strip("[] ").split()) == 5, line
            line = line[: value.start(2)] + "[...]"
        grouped[name].append(line)
    return dict(grouped)


def transcripts(heading):
    """The runs a page section shows: [(command, stdout lines, stderr lines)].

    A line after ^C, or that says error:, is on stderr.
    """
    runs = []
    for block in code_blocks(heading, "text"):
        for line in block.splitlines():
            if line.startswith("$ "):
                runs.append((line[2:], [], []))
                on_stderr = False
            elif line == "^C":
                on_stderr = True
            else:
                runs[-1][2 if on_stderr or ": error: " in line else 1].append(line)
    return runs


def assert_shown(shown, result):
    """A run the page shows is what a real one printed, process by process."""
    _, stdout, stderr = shown
    assert by_process(stdout) == by_process(result[1].splitlines())
    assert by_process(stderr) == by_process(script_stderr(result[2]))


def checkpoint_files(*steps):
    """The files of the chief's checkpoints at these steps, sorted."""
    ends = ("data-00000-of-00001", "index", "positions")
    return [f"model.ckpt-{step}.{end}" for step in steps for end in ends]


def assert_export_matches(stdout):
    """The chief's final inference, restored from its export, is what it printed before saving."""
    inferred = [x for x in stdout.splitlines() if "Final inference | Sample value" in x]
    restored = [x for x in stdout.splitlines() if "Restored values" in x]
    assert len(inferred) == len(restored) == 2
    for a, b in zip(inferred, restored):
        assert a.split(": ")[-1] == b.split(": ")[-1]
    assert "worker 0: Inferences match: True" in stdout.splitlines()


# -----------------------------------------------------------------------------
# The scenarios, each run once


@pytest.fixture(scope="session")
def local_runs(tmp_path_factory, worker_id):
    """The page's three local runs on one --checkpoint-dir: stopped, interrupted, finished.

    The first stops at each worker's step 3 (--max-steps), and a second run
    started meanwhile on its --checkpoint-dir is refused. The second resumes, and
    gets Ctrl-C once each worker has printed its step 4, before the chief saved
    it. The third resumes again, and finishes.
    """

    def scenario(folder, started):
        process = start(started, folder, *LOCAL, "--max-steps", "3")
        # The first run holds the lock on workers_ckpt from before it prints its first line.
        printed = read_until(process, "Cluster on this machine")
        results = {"refused": run(folder, *LOCAL), "stopped": finish(process, printed)}
        results["after stop"] = sorted(os.listdir(str(folder)))
        markers = "worker 0: step 4 of 4|worker 1: step 4 of 4"
        process = start(started, folder, *LOCAL, pause_at=markers)
        printed = read_until(process, "PAUSED") + read_until(process, "PAUSED")
        assert printed.count("PAUSED\n") == 2, printed
        os.killpg(process.pid, signal.SIGINT)  # What Ctrl-C sends: the whole group.
        results["interrupted"] = finish(process, printed)
        results["after interrupt"] = [
            sorted(os.listdir(str(folder))),
            sorted(os.listdir(str(folder / "workers_ckpt"))),
        ]
        results["finished"] = finish(start(started, folder, *LOCAL))
        return results

    return once(tmp_path_factory, worker_id, "local_runs", scenario)


@pytest.fixture(scope="session")
def one_worker_killed(tmp_path_factory, worker_id):
    """One process per TF_CONFIG; worker 1 kill -9ed after its first step, then started again."""

    def scenario(folder, started):
        args = ["--checkpoint-dir", "cluster_ckpt"]
        ps = start(started, folder, *args, tf_config=cluster_config("ps", 0))
        chief = start(started, folder, *args, tf_config=cluster_config("worker", 0))
        config = cluster_config("worker", 1)
        worker = start(started, folder, *args, tf_config=config, pause_at="worker 1: step 1 of 4")
        printed = read_until(worker, "PAUSED")
        assert printed.endswith("PAUSED\n"), printed
        worker.kill()
        killed = finish(worker, printed)
        again = finish(start(started, folder, *args, tf_config=config))
        results = {"killed": killed, "again": again, "chief": finish(chief), "ps": finish(ps)}
        # Three workers on the checkpoint of two: refused before any process starts.
        results["three"] = run(folder, "--local-workers", "3", *args)
        # The same with the positions beside it saying three: the chief, reading
        # the checkpoint itself, refuses it, and the launcher stops the others.
        shutil.copytree(str(folder / "cluster_ckpt"), str(folder / "tampered"))
        (folder / "tampered" / "model.ckpt-8.positions").write_text('{"counts": [4, 4, 0]}')
        results["tampered"] = run(folder, "--local-workers", "3", "--checkpoint-dir", "tampered")
        return results

    return once(tmp_path_factory, worker_id, "one_worker_killed", scenario)


# -----------------------------------------------------------------------------
# Local runs: stopped at a step, interrupted, finished


@pytest.mark.heavy(25)
def test_the_page_shows_the_local_runs(local_runs):
    _, results = local_runs
    shown = transcripts("Run it")
    command = " ".join([COMMAND] + LOCAL)
    assert [command for command, _, _ in shown] == [command + " --max-steps 3", command, command]
    for run_shown, name in zip(shown, ("stopped", "interrupted", "finished")):
        assert_shown(run_shown, results[name])


def test_stopped_at_a_step_then_resumed_reads_each_sample_once_per_epoch(local_runs):
    _, results = local_runs
    stopped, finished = results["stopped"], results["finished"]
    assert stopped[0] == 0 and finished[0] == 0, (stopped[2][-3000:], finished[2][-3000:])
    assert script_stderr(stopped[2]) == script_stderr(finished[2]) == []
    lines = stopped[1].splitlines()
    assert (
        "worker 0: workers_ckpt/model.ckpt-6 holds the model and the batches each worker read: 3, 3"
        in (lines)
    )
    assert lines[-1] == "All 3 processes ended well."
    assert results["after stop"] == ["workers_ckpt"]  # No export yet.
    # The interrupted run's steps were lost with its parameter server: the
    # model, resumed from the checkpoint at step 3, was trained by these.
    for worker in (0, 1):
        assert [step.step for step in steps(stopped[1], worker)] == [1, 2, 3]
        assert [step.step for step in steps(finished[1], worker)] == [4]
        assert_each_sample_once_per_epoch(steps(stopped[1], worker) + steps(finished[1], worker))


def test_a_second_run_on_the_same_checkpoint_dir_is_refused(local_runs):
    _, results = local_runs
    status, stdout, stderr = results["refused"]
    assert status == 2 and stdout == ""
    assert stderr.splitlines() == [
        (
            "several_workers.py: error: another run is training in --checkpoint-dir workers_ckpt: "
            "wait for it to end, or give another folder"
        )
    ]


def test_ctrl_c_stops_every_process_in_one_line_and_leaves_nothing_half_written(local_runs):
    _, results = local_runs
    status, stdout, stderr = results["interrupted"]
    assert status == 128 + signal.SIGINT
    for worker in (0, 1):
        assert [step.step for step in steps(stdout, worker)] == [4]
    lines = script_stderr(stderr)
    # The workers first, in either order, each after its step; then the
    # parameter server, which the launcher stops once they are done.
    assert sorted(lines[:2]) == [
        (
            "worker 0: interrupted by SIGINT after its step 4 of 4; workers_ckpt/model.ckpt-6 is its "
            "last checkpoint, and the same command resumes from it; nothing was exported to workers_export"
        ),
        (
            "worker 1: interrupted by SIGINT after its step 4 of 4; its count on the parameter "
            "server, or the chief's checkpoint, resumes it"
        ),
    ]
    assert lines[2:] == [
        (
            "ps 0: interrupted by SIGTERM: the variables it held are gone; the chief's last "
            "checkpoint has them"
        ),
        (
            "interrupted by SIGINT: every process stopped; workers_ckpt/model.ckpt-6, the chief's last "
            "checkpoint, is where the same command resumes"
        ),
    ]
    folder, checkpoints = results["after interrupt"]
    assert folder == ["workers_ckpt"]  # No export, no staging folder.
    # The Saver keeps two: the other one's step depends on when the chief saw the counts.
    earlier = int(re.match(r"model\.ckpt-(\d+)\.", checkpoints[1]).group(1))
    assert earlier < 6 and checkpoints == ["checkpoint"] + checkpoint_files(earlier, 6)


def test_restarted_from_the_chief_s_checkpoint_what_it_had_not_seen_is_read_again(local_runs):
    _, results = local_runs
    interrupted, finished = results["interrupted"], results["finished"]
    lines = finished[1].splitlines()
    restored = "worker 0: restored workers_ckpt/model.ckpt-6: the model, and the batches each worker had read"
    assert restored + ": 3, 3" in lines
    for worker in (0, 1):
        # Trained on before Ctrl-C, lost with the parameter server, not in the
        # checkpoint: read again, and nothing skipped.
        before, after = steps(interrupted[1], worker), steps(finished[1], worker)
        assert [step._replace(global_step=0) for step in before] == [
            step._replace(global_step=0) for step in after
        ]
        assert f"worker {worker}: resumes after its step 3 of 4: epoch 1, batch 1" in lines
    assert (
        "worker 0: workers_ckpt/model.ckpt-8 holds the model and the batches each worker read: 4, 4"
        in (lines)
    )
    assert lines[-1] == "All 3 processes ended well."
    assert_export_matches(finished[1])


def test_the_export_restores_through_dataset_init_and_serves_features(local_runs, sar):
    folder, _ = local_runs
    export = str(folder / "workers_export")
    expected = np.load(os.path.join(export, "assets.extra", "expected_logits.npy"))
    features_array, labels_array = sar.make_data()
    # Through the restored iterator, found by its name, as the tutorial restores its own.
    restored = sar.infer_restored(export, features_array, labels_array, sar.BATCH_SIZE)
    np.testing.assert_allclose(np.concatenate(restored), expected, atol=sar.TOLERANCE)
    # Fed `features` directly, as saved_model_cli and TF Serving do: no iterator.
    tf = sar.tf
    with tf.Graph().as_default() as graph, sar.new_session(graph) as sess:
        meta_graph = tf.saved_model.loader.load(sess, [sar.SERVE_TAG], export)
        signature = meta_graph.signature_def[sar.SIGNATURE_KEY]
        feed = {signature.inputs[sar.MODEL_INPUT_KEY].name: features_array}
        served = sess.run(signature.outputs[sar.LOGITS_KEY].name, feed)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # The tutorial's graph and the trained model alone: no counts, no optimizer.
    variables = os.path.join(export, "variables", "variables")
    names = [name for name, _ in tf.train.list_variables(variables)]
    assert all(name.startswith(("bidirectional_rnn/", "dense/")) for name in names), names
    assert sorted(os.listdir(str(folder))) == ["workers_ckpt", "workers_export"]


def test_the_chief_s_checkpoint_holds_every_worker_s_count(local_runs, sar):
    folder, _ = local_runs
    checkpoint = str(folder / "workers_ckpt" / "model.ckpt-8")
    load = sar.tf.train.load_variable
    assert load(checkpoint, "batches_in_checkpoint").tolist() == [4, 4]
    # The model's updates: the first run's six, restored, and the third run's
    # two; the second run's two were lost with its parameter server.
    assert load(checkpoint, "global_step") == 8
    saved = [name for name, _ in sar.tf.train.list_variables(checkpoint)]
    # The counts that the workers update as the chief saves are not saved themselves.
    assert "batches_read" not in saved and "training_done" not in saved


# -----------------------------------------------------------------------------
# One worker killed, the others going on


@pytest.mark.heavy(17)
def test_a_worker_killed_and_restarted_resumes_from_its_count(one_worker_killed):
    _, results = one_worker_killed
    killed, again = results["killed"], results["again"]
    assert killed[0] == -signal.SIGKILL
    assert [step.step for step in steps(killed[1])] == [1]
    assert again[0] == 0, again[2][-3000:]
    assert again[1].splitlines()[0] == "worker 1: resumes after its step 1 of 4: epoch 0, batch 1"
    # The design's bound: what is read twice is at most the one step that was
    # running when the worker died. Killed between two steps, it is none.
    read = steps(killed[1]) + steps(again[1])
    twice = {step.step for step in read if [r.step for r in read].count(step.step) > 1}
    assert len(twice) <= 1 and not twice
    assert_each_sample_once_per_epoch(read)
    # The chief went on, waited for worker 1, and exported.
    chief = results["chief"]
    assert chief[0] == 0, chief[2][-3000:]
    assert_each_sample_once_per_epoch(steps(chief[1]))
    assert_export_matches(chief[1])
    assert results["ps"][0] == 0
    assert by_process(results["ps"][1].splitlines()) == {
        "ps 0: ": [
            "ps 0: serving at 127.0.0.1:PORT",
            "ps 0: the chief has saved its last checkpoint: ends",
        ]
    }
    for name in ("again", "chief", "ps"):
        assert script_stderr(results[name][2]) == []


def test_the_page_shows_the_worker_killed_and_restarted(one_worker_killed):
    _, results = one_worker_killed
    shown = transcripts("One worker killed, the others going on")
    assert [command for command, _, _ in shown] == [COMMAND + " --checkpoint-dir cluster_ckpt"] * 2
    assert_shown(shown[0], results["killed"])
    assert_shown(shown[1], results["again"])


def test_a_checkpoint_of_another_cluster_size_is_refused_before_any_process(one_worker_killed):
    folder, results = one_worker_killed
    line = (
        "several_workers.py: error: cannot resume from cluster_ckpt/model.ckpt-8: it was written "
        "by 2 workers, not 3: resume it with as many, or start anew in another --checkpoint-dir\n"
    )
    assert list(results["three"]) == [2, "", line]
    assert sorted(os.listdir(str(folder / "cluster_ckpt")))[-3:] == checkpoint_files(8)


def test_a_process_that_fails_stops_the_others_in_one_line_each(one_worker_killed):
    folder, results = one_worker_killed
    status, stdout, stderr = results["tampered"]
    assert status == 2
    assert stdout.splitlines()[0].startswith("Cluster on this machine: ps 127.0.0.1:")
    assert steps(stdout) == []
    lines = script_stderr(stderr)
    assert lines[-1] == (
        "worker 0 ended with status 2, so the others were stopped; tampered/model.ckpt-8, the "
        "chief's last checkpoint, is as it was"
    )
    assert (
        "worker 0: error: cannot resume from tampered/model.ckpt-8: it was written by 2 workers, "
        "not 3: resume it with as many, or start anew in another --checkpoint-dir"
    ) in lines
    # The others, still starting or waiting for the chief: one line each.
    others = sorted(
        line.split(": ", 1)[0] for line in lines[:-1] if not line.startswith("worker 0")
    )
    assert others == ["ps 0", "worker 1", "worker 2"], lines
    assert all(": interrupted by SIGTERM" in line for line in lines[:-1] if " error: " not in line)
    assert sorted(os.listdir(str(folder / "tampered")))[-3:] == checkpoint_files(8)


@pytest.mark.heavy(20)
def test_a_worker_that_never_comes_back_ends_the_others_in_one_line_each(tmp_path):
    # kill -9 of one worker, not its group, and no one starts it again: the
    # chief and the parameter server wait --peer-timeout for it to go on.
    args = ["--checkpoint-dir", "lost_ckpt", "--peer-timeout", "8"]
    with processes() as started:
        ps = start(started, tmp_path, *args, tf_config=cluster_config("ps", 0))
        chief = start(started, tmp_path, *args, tf_config=cluster_config("worker", 0))
        config = cluster_config("worker", 1)
        worker = start(started, tmp_path, *args, tf_config=config, pause_at="worker 1: step 1 of 4")
        read_until(worker, "PAUSED")
        worker.kill()
        chief_ended, ps_ended = finish(chief), finish(ps)
    assert chief_ended[0] == 1 and [step.step for step in steps(chief_ended[1], 0)] == [1, 2, 3, 4]
    assert script_stderr(chief_ended[2]) == [
        (
            "worker 0: waited 8 s for worker 1 (at its step 1 of 4) to train on: ends; "
            "lost_ckpt/model.ckpt-5 holds every count, and the same command resumes from it"
        )
    ]
    assert ps_ended[0] == 1
    assert script_stderr(ps_ended[2]) == [
        (
            "ps 0: waited 16 s for the workers to train on, or the chief to end (counts: 4, 1): ends; "
            "the chief's last checkpoint has the variables"
        )
    ]
    assert sorted(os.listdir(str(tmp_path / "lost_ckpt")))[-3:] == checkpoint_files(5)


# -----------------------------------------------------------------------------
# Bad input: one line, exit status 2, nothing written, before TensorFlow is imported


def refused(folder, *args, tf_config=None):
    """Runs the example, which must refuse; returns its one line."""
    before = sorted(os.listdir(str(folder)))
    status, stdout, stderr = run(folder, *args, tf_config=tf_config)
    assert (status, stdout) == (2, ""), stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert sorted(os.listdir(str(folder))) == before
    return stderr.rstrip("\n")


def test_a_checkpoint_it_did_not_write_or_a_max_steps_behind_is_refused_before_tensorflow(
    tmp_path, no_heavy_imports
):
    # The tutorial's own --checkpoint-dir: a checkpoint file, no positions beside it.
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-4"\n')
    for name in ("model.ckpt-4.index", "model.ckpt-4.data-00000-of-00001"):
        (tmp_path / "ckpt" / name).write_text("")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-8"\n')
    for name in ("model.ckpt-8.index", "model.ckpt-8.data-00000-of-00001"):
        (tmp_path / "done" / name).write_text("")
    (tmp_path / "done" / "model.ckpt-8.positions").write_text('{"counts": [4, 4]}')
    refusals = {
        ("--checkpoint-dir", "ckpt"): (
            "cannot resume from ckpt/model.ckpt-4: it holds no worker's position: this program "
            "did not write it"
        ),
        ("--checkpoint-dir", "done", "--max-steps", "3"): (
            "--max-steps 3 is behind done/model.ckpt-8, where the workers are at steps 4, 4: "
            "give --max-steps 4 or more, or none"
        ),
    }
    for args, line in refusals.items():
        # Where importing TensorFlow ends the process: the line comes before.
        before = snapshot(str(tmp_path))
        result = run_light(no_heavy_imports, tmp_path, EXAMPLE, "--local-workers", "2", *args)
        assert (result.returncode, result.stdout) == (2, ""), result
        assert result.stderr == f"several_workers.py: error: {line}\n"
        assert snapshot(str(tmp_path)) == before


def test_bad_input_is_one_line_before_tensorflow(tmp_path):
    chief = cluster_config("worker", 0)
    assert refused(tmp_path, "--local-workers", "2") == (
        "error: the following arguments are required: --checkpoint-dir (see --help)"
    )
    assert refused(tmp_path, "--checkpoint-dir", "ckpt") == (
        "several_workers.py: error: give --local-workers N, or set TF_CONFIG to this process's "
        "place in a cluster"
    )
    assert "must be a positive integer, not '0'" in refused(tmp_path, "--local-workers", "0")
    assert "at most 8 on one machine" in refused(tmp_path, *LOCAL[:1], "9", *LOCAL[2:])
    assert "unset TF_CONFIG" in refused(tmp_path, *LOCAL, tf_config=chief)
    line = refused(tmp_path, "--checkpoint-dir", "ckpt", tf_config="{not json")
    assert line.startswith("several_workers.py: error: TF_CONFIG is not a cluster and a task: ")
    for task in ({"type": "worker", "index": 2}, {"type": "chief", "index": 0}):
        config = dict(chief, task=task)
        assert "is not in its cluster" in refused(
            tmp_path, "--checkpoint-dir", "c", tf_config=config
        )
    config = dict(chief, cluster=dict(chief["cluster"], chief=["127.0.0.1:1"]))
    assert "jobs other than ps and worker" in refused(tmp_path, *LOCAL[2:], tf_config=config)


def test_folders_it_must_not_touch_are_one_line_before_tensorflow(tmp_path):
    (tmp_path / "workers_export").write_text("not an export")
    assert refused(tmp_path, *LOCAL) == (
        "several_workers.py: error: workers_export already exists and is not a SavedModel, so "
        "it is left as it is: choose another --export-dir, or remove it yourself"
    )
    # The chief of a cluster checks the same, as the launcher does.
    config = cluster_config("worker", 0)
    assert refused(tmp_path, *LOCAL[2:], tf_config=config).startswith(
        "worker 0: error: workers_export already exists and is not a SavedModel"
    )
    (tmp_path / "workers_export").unlink()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert refused(tmp_path, *LOCAL[:3], "notes").endswith(
        "--checkpoint-dir notes already exists and holds files that are not this program's "
        "checkpoints (todo.txt), so it is left as it is: choose another folder"
    )
    assert refused(tmp_path, *LOCAL[:3], "notes/todo.txt").endswith(
        "--checkpoint-dir notes/todo.txt is not a folder"
    )
    # /proc refuses new entries even to root, unlike a folder with chmod 0o500.
    assert refused(tmp_path, *LOCAL[:3], "/proc/ckpt").endswith(
        "cannot make --checkpoint-dir /proc/ckpt: cannot write in /proc"
    )
    assert refused(tmp_path, *LOCAL, "--export-dir", "/proc/simple").endswith(
        "cannot export to /proc/simple: cannot write in /proc"
    )
    assert refused(tmp_path, *LOCAL[:3], ".").endswith(
        "--checkpoint-dir . is the export's folder, or inside the export workers_export: "
        "give a folder of its own"
    )


# -----------------------------------------------------------------------------
# The program and its page


# (Its Python 3.5 grammar, and the page's excerpts being the file's lines, are
# checked with the other programs', in test_style.py.)


def test_the_page_is_linked_from_the_readme_and_runs_from_the_clone():
    assert "](docs/several-workers.md)" in doc_section("Going further")
    commands = re.findall(r"^\$ (python3 \S+)", read(PAGE), re.MULTILINE)
    assert commands and set(commands) == {COMMAND}
    assert read(README).count("several-workers.md") == 1
