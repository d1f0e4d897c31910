"""Train the tutorial's model on a parameter server and several workers, and resume each one.

    python3 examples/several_workers.py --local-workers 2 --checkpoint-dir ckpt
    TF_CONFIG='{"cluster": {"ps": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]},
                "task": {"type": "worker", "index": 1}}' \\
        python3 examples/several_workers.py --checkpoint-dir ckpt

TensorFlow's own distributed runtime, as TF1 projects used it: a tf.train.Server
in each process, the variables on the parameter server, each worker running its
own copy of the graph (between-graph replication) on its own shard of the data,
and worker 0, the chief, saving checkpoints and exporting the model.

The lesson: each worker's iterator lives on that worker, in no checkpoint the
chief writes. Here each worker's count of the batches it trained on is a
variable on the parameter server, counted in the same step as the update, and
the chief's checkpoint holds every count beside the model. A worker restarts
where its count says; a whole cluster restarts where the chief's checkpoint
says, model and positions together.

--local-workers N starts a parameter server and N workers on this machine, each
as this program with its TF_CONFIG, and waits for them. With TF_CONFIG instead,
it is one of those processes, on any machine. The chief writes its checkpoints
in --checkpoint-dir and, once every worker is done, the tutorial's export in
--export-dir (workers_export). Needs save_and_restore.py in the folder above this one.
Exits 0 when done (or stopped at --max-steps), 2 on bad input, 1 when something
else failed (--local-workers: the status of the first process that failed);
stopped by Ctrl-C or kill, 130 or 143, and each process says in one line what
it leaves.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

# How this process names itself in what it prints: "ps 0", "worker 1", or the
# program's name for the process that starts a local cluster.
NAME = "several_workers.py"


# Ctrl-C and `kill` end the run with one line from its first moment: the
# imports below take seconds, and nothing is written until they are done.
def stop_before_anything_is_written(signum, frame):
    """Ends the process: it was stopped before it wrote anything."""
    line = "{}: interrupted by {} before anything was written\n"
    os.write(2, line.format(NAME, signal.Signals(signum).name).encode())
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, stop_before_anything_is_written)
    signal.signal(signal.SIGTERM, stop_before_anything_is_written)

# -----------------------------------------------------------------------------
# Before TensorFlow: the command line, TF_CONFIG, and the folders, checked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A folder of its own: the tutorial's export, simple/, is left as it is.
EXPORT_DIR = "workers_export"
MAX_LOCAL_WORKERS = 8  # Each one is a TensorFlow process on this machine.
MAX_WORKERS = 32  # The tutorial's batch of 32 is split between the workers.
# The launcher's lock on --checkpoint-dir, handed to the chief it starts: the
# lock lasts as long as either of them, so no second run starts meanwhile.
LOCK_FD_ENV = "SEVERAL_WORKERS_LOCK_FD"
# Set by the launcher in the processes it starts: there, Ctrl-C stops the
# workers, and the launcher stops the parameter server once they are done.
LAUNCHER_ENV = "SEVERAL_WORKERS_LAUNCHER"
# What the chief writes in --checkpoint-dir, temporary files of a killed save included.
CHECKPOINT_FILES = re.compile(
    r"checkpoint(\.tmp\w*)?$"
    r"|model\.ckpt-\d+(\.index|\.data-\d+-of-\d+)(\.tempstate\d+)?$"
    r"|model\.ckpt-\d+_temp\w*$"
    r"|model\.ckpt-\d+\.positions(\.tmp)?$"
)
# Beside each checkpoint the chief writes, the workers' positions in it, read
# before TensorFlow's import: a checkpoint without them is not this program's.
POSITIONS = ".positions"
POLL_SECONDS = 0.05  # How often a process that waits for another looks again.
# How long a process waits for another to do its part (the chief for a worker's
# next step, a worker for the chief's model, the parameter server for either)
# before it ends, in one line that says so: --peer-timeout, whose default this
# variable of the environment may set (the tests set a short one).
PEER_TIMEOUT_ENV = "SEVERAL_WORKERS_PEER_TIMEOUT"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Refusal(Exception):
    """Bad input: reported in one line, exit status 2, nothing written."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a bad argument in one line, without the usage."""

    def error(self, message):
        self.exit(2, "error: {} (see --help)\n".format(message))


def positive_int(text):
    """Parses a command-line value that must be a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer, not {!r}".format(text))
    return value


def parse_args(argv):
    """Parses the command line."""
    parser = OneLineErrorParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--local-workers",
        type=positive_int,
        help="start a parameter server and this many workers on this machine (without it, "
        "TF_CONFIG says which process of a cluster this one is)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        required=True,
        help="where the chief saves a checkpoint after each of its steps, and resumes from",
    )
    parser.add_argument(
        "--export-dir", default=EXPORT_DIR, help="where the chief exports the model"
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        help="each worker stops after this many of its own steps, as an interrupted run would",
    )
    parser.add_argument(
        "--peer-timeout",
        type=positive_int,
        default=os.environ.get(PEER_TIMEOUT_ENV, "300"),
        help="seconds a process waits for another to do its part (the chief for a worker's "
        "next step, a worker for the chief's model; the parameter server twice as long) "
        "before it ends, in one line",
    )
    args = parser.parse_args(argv)
    if args.local_workers is not None and args.local_workers > MAX_LOCAL_WORKERS:
        parser.error("--local-workers: at most {} on one machine".format(MAX_LOCAL_WORKERS))
    return args


def read_tf_config(text, local_workers):
    """TF_CONFIG, checked: ({"ps": [...], "worker": [...]}, task type, task index)."""
    if local_workers is not None:
        if text is not None:
            raise Refusal("--local-workers starts a cluster of its own: unset TF_CONFIG")
        return None, None, None
    if text is None:
        raise Refusal(
            "give --local-workers N, or set TF_CONFIG to this process's place in a cluster"
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], task["index"]
        jobs = {job: list(cluster[job]) for job in ("ps", "worker")}
    except (ValueError, KeyError, TypeError) as error:
        what = "no {}".format(error) if isinstance(error, KeyError) else error
        raise Refusal("TF_CONFIG is not a cluster and a task: {}".format(what))
    if set(cluster) - set(jobs):
        raise Refusal("TF_CONFIG has jobs other than ps and worker (here the chief is worker 0)")
    hosts = [host for job in jobs.values() for host in job]
    if not all(jobs.values()) or not all(isinstance(host, str) for host in hosts):
        raise Refusal('TF_CONFIG needs "host:port" strings for at least one ps and one worker')
    if len(jobs["worker"]) > MAX_WORKERS:
        raise Refusal("TF_CONFIG has more than {} workers".format(MAX_WORKERS))
    if kind not in jobs or type(index) is not int or not 0 <= index < len(jobs[kind]):
        raise Refusal("TF_CONFIG's task {} is not in its cluster".format(json.dumps(task)))
    return jobs, kind, index


def is_saved_model(path):
    """Tells whether path is a folder with a saved_model.pb(txt) at its top."""
    names = ("saved_model.pb", "saved_model.pbtxt")
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, n)) for n in names)


def writable(folder):
    """Tells whether this process can write in folder: tried, and undone (os.access trusts root)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".several_workers-", dir=folder))
    except OSError:
        return False
    return True


def check_folders(checkpoint_dir, export_dir):
    """Raises Refusal unless the chief may write its checkpoints and its export there."""
    if not os.path.isfile(os.path.join(ROOT, "save_and_restore.py")):
        raise Refusal(
            "no save_and_restore.py in {}: run this from the project's clone".format(ROOT)
        )
    export_parent = os.path.dirname(os.path.abspath(export_dir))
    if not os.path.isdir(export_parent):
        raise Refusal("cannot export to {}: no folder {}".format(export_dir, export_parent))
    if os.path.join(os.getcwd(), "").startswith(os.path.join(os.path.abspath(export_dir), "")):
        raise Refusal(
            "cannot export to {}: it is the folder you run in, or holds it".format(export_dir)
        )
    if os.path.lexists(export_dir) and (
        os.path.islink(export_dir) or not is_saved_model(export_dir)
    ):
        raise Refusal(
            "{} already exists and is not a SavedModel, so it is left as it is: "
            "choose another --export-dir, or remove it yourself".format(export_dir)
        )
    if not writable(export_parent):
        raise Refusal("cannot export to {}: cannot write in {}".format(export_dir, export_parent))
    checkpoints = os.path.realpath(checkpoint_dir)
    export = os.path.realpath(export_dir)
    if checkpoints == os.path.dirname(export) or (checkpoints + os.sep).startswith(export + os.sep):
        raise Refusal(
            "--checkpoint-dir {} is the export's folder, or inside the export {}: "
            "give a folder of its own".format(checkpoint_dir, export_dir)
        )
    if not os.path.lexists(checkpoint_dir):
        parent = os.path.dirname(os.path.abspath(checkpoint_dir))
        if not os.path.isdir(parent) or not writable(parent):
            raise Refusal(
                "cannot make --checkpoint-dir {}: cannot write in {}".format(checkpoint_dir, parent)
            )
        return
    if not os.path.isdir(checkpoint_dir):
        raise Refusal("--checkpoint-dir {} is not a folder".format(checkpoint_dir))
    others = sorted(name for name in os.listdir(checkpoint_dir) if not CHECKPOINT_FILES.match(name))
    if others:
        raise Refusal(
            "--checkpoint-dir {} already exists and holds files that are not this program's "
            "checkpoints ({}), so it is left as it is: choose another folder".format(
                checkpoint_dir, ", ".join(others[:3] + ["..."] * (len(others) > 3))
            )
        )
    if not writable(checkpoint_dir):
        raise Refusal("cannot write in --checkpoint-dir {}".format(checkpoint_dir))


def lock_checkpoint_dir(checkpoint_dir):
    """Makes checkpoint_dir if it is new, and locks it; returns the lock's descriptor."""
    import fcntl

    try:
        os.mkdir(checkpoint_dir)
    except FileExistsError:
        pass
    except OSError as error:
        raise Refusal("cannot make --checkpoint-dir {}: {}".format(checkpoint_dir, error.strerror))
    # The lock is on the folder itself: it leaves no file behind, and the
    # system releases it when the last process holding it ends, even by SIGKILL.
    descriptor = os.open(checkpoint_dir, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Refusal(
            "another run is training in --checkpoint-dir {}: wait for it to end, "
            "or give another folder".format(checkpoint_dir)
        )
    return descriptor


def check_resume(checkpoint_dir, num_workers, max_steps):
    """Raises Refusal unless the run can resume from the latest checkpoint, if any.

    Reads what the chief wrote beside it: the number of workers, and each one's count.
    """
    path = latest_checkpoint(checkpoint_dir)
    if path is None or not os.path.isfile(path + ".index"):
        return  # None yet; or a damaged one, which the chief says.
    try:
        with open(path + POSITIONS) as file:
            counts = json.load(file)["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        raise Refusal(
            "cannot resume from {}: it holds no worker's position: this program did not "
            "write it".format(path)
        )
    if len(counts) != num_workers:
        raise Refusal(
            "cannot resume from {}: it was written by {} workers, not {}: resume it with as "
            "many, or start anew in another --checkpoint-dir".format(path, len(counts), num_workers)
        )
    if max_steps is not None and max(counts) > max_steps:
        raise Refusal(
            "--max-steps {} is behind {}, where the workers are at steps {}: give "
            "--max-steps {} or more, or none".format(
                max_steps, path, ", ".join(map(str, counts)), max(counts)
            )
        )


def latest_checkpoint(checkpoint_dir):
    """What the `checkpoint` file of checkpoint_dir names, read without TensorFlow; None if none."""
    try:
        with open(os.path.join(checkpoint_dir, "checkpoint")) as file:
            match = re.search(r'^model_checkpoint_path: "(.*)"', file.read(), re.MULTILINE)
    except OSError:
        return None
    return os.path.join(checkpoint_dir, match.group(1)) if match else None


# -----------------------------------------------------------------------------
# --local-workers: a cluster on this machine


def free_ports(count):
    """Returns count TCP ports of localhost that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))  # The system picks a free port.
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def status_text(returncode):
    """A process's exit status as a shell shows it: 137 for SIGKILL."""
    return 128 - returncode if returncode < 0 else returncode


def print_line(text, stream=None):
    """Prints text and its newline in one write: the processes share the terminal, and
    two lines written a piece at a time by two processes can come out mixed."""
    print(text + "\n", end="", file=stream or sys.stdout, flush=True)


def launch(args, lock):
    """Starts a parameter server and the workers here, as processes of this program; waits for them.

    Returns the exit status of the first process that failed, 0 if none did.
    """
    hosts = ["127.0.0.1:{}".format(port) for port in free_ports(1 + args.local_workers)]
    cluster = {"ps": hosts[:1], "worker": hosts[1:]}
    line = "Cluster on this machine: ps {}, worker {}"
    print_line(line.format(hosts[0], " ".join(hosts[1:])))
    # The same Python, with the same warning options, runs each process.
    options = ["-W" + option for option in sys.warnoptions]
    command = [sys.executable] + options + [os.path.abspath(__file__)]
    command += ["--checkpoint-dir", args.checkpoint_dir, "--export-dir", args.export_dir]
    command += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    command += ["--peer-timeout", str(args.peer_timeout)]
    signals = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: signals.append(signum))
    processes = []  # (name, process), the parameter server first.
    for kind, index in [("ps", 0)] + [("worker", i) for i in range(args.local_workers)]:
        task = {"cluster": cluster, "task": {"type": kind, "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(task), PYTHONUNBUFFERED="1")
        env[LAUNCHER_ENV] = str(os.getpid())
        chief = kind == "worker" and index == 0
        if chief:
            env[LOCK_FD_ENV] = str(lock)
        process = subprocess.Popen(command, env=env, pass_fds=(lock,) if chief else ())
        processes.append(("{} {}".format(kind, index), process))
    ps, workers = processes[0][1], processes[1:]
    failed, stopping, deadline = None, False, None
    while any(process.poll() is None for _, process in processes):
        if failed is None:
            failed = next(
                ((name, p.returncode) for name, p in processes if p.poll() not in (None, 0)), None
            )
        if not stopping and (signals or failed):
            # The workers first, each after its step; the parameter server once
            # they are done, so that no step is cut in half.
            stopping, deadline = True, time.time() + 60
            for _, process in workers:
                if process.poll() is None:
                    process.send_signal(signals[0] if signals else signal.SIGTERM)
        if stopping and ps.poll() is None and all(p.poll() is not None for _, p in workers):
            ps.terminate()
        if deadline is not None and time.time() > deadline:  # One that is stuck.
            for _, process in processes:
                if process.poll() is None:
                    process.kill()
        time.sleep(POLL_SECONDS)
    if failed is None:
        failed = next(((name, p.returncode) for name, p in processes if p.returncode), None)
    if not signals and failed is None:
        print_line("All {} processes ended well.".format(len(processes)))
        return 0
    path = latest_checkpoint(args.checkpoint_dir)
    if path is None:
        resume = "no checkpoint is complete in {}: the same command starts over".format(
            args.checkpoint_dir
        )
    else:
        resume = "{}, the chief's last checkpoint, is where the same command resumes".format(path)
    if signals:
        said = "interrupted by {}: every process stopped".format(signal.Signals(signals[0]).name)
        status = 128 + signals[0]
    else:
        status = status_text(failed[1])
        said = "{} ended with status {}, so the others were stopped".format(failed[0], status)
        if status == 2:  # It refused to start, and said why: the same command would too.
            resume = "{}, the chief's last checkpoint, is as it was".format(path) if path else ""
    print_line("; ".join(part for part in (said, resume) if part), sys.stderr)
    return status


if __name__ == "__main__":
    try:
        ARGS = parse_args(sys.argv[1:])
        CLUSTER, KIND, INDEX = read_tf_config(os.environ.get("TF_CONFIG"), ARGS.local_workers)
        if ARGS.local_workers is not None:
            check_folders(ARGS.checkpoint_dir, ARGS.export_dir)
            check_resume(ARGS.checkpoint_dir, ARGS.local_workers, ARGS.max_steps)
            sys.exit(launch(ARGS, lock_checkpoint_dir(ARGS.checkpoint_dir)))
        NAME = "{} {}".format(KIND, INDEX)
        if KIND == "worker":
            check_resume(ARGS.checkpoint_dir, len(CLUSTER["worker"]), ARGS.max_steps)
        if KIND == "ps" and LAUNCHER_ENV in os.environ:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # The launcher stops it, last.
        if (KIND, INDEX) == ("worker", 0):
            check_folders(ARGS.checkpoint_dir, ARGS.export_dir)
            if LOCK_FD_ENV not in os.environ:  # Unless its launcher holds the lock for it.
                LOCK = lock_checkpoint_dir(ARGS.checkpoint_dir)
    except Refusal as refusal:
        print_line("{}: error: {}".format(NAME, refusal), sys.stderr)
        sys.exit(2)

# The distributed runtime logs warnings about its normal work (a step's
# rendezvous cleaned up, a session closed after the parameter server ended):
# level 2 keeps its errors only. TensorFlow reads it once, when it is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, ROOT)
import numpy as np

import save_and_restore as sar

sar.import_tensorflow()  # The tutorial's tf: TensorFlow's TF1 API.
tf = sar.tf

# -----------------------------------------------------------------------------
# The graph: the tutorial's model, each worker on its shard, the counts beside the model

SKIP_BATCHES_KEY = sar.SKIP_BATCHES_KEY  # Fed at initialization: where a worker resumes.


def batch_size(num_workers):
    """A worker's batch: the tutorial's batch of 32, split between the workers."""
    return sar.BATCH_SIZE // num_workers


def epoch_length(num_workers, worker):
    """How many batches a worker reads in an epoch of its shard (the last may be short)."""
    shard = len(range(worker, sar.NUM_SAMPLES, num_workers))
    return -(-shard // batch_size(num_workers))


def last_steps(num_workers, max_steps=None):
    """The step each worker stops after: the end of its last epoch, or --max-steps."""
    ends = [sar.EPOCHS * epoch_length(num_workers, w) for w in range(num_workers)]
    return np.minimum(ends, max_steps or max(ends))


def build_sharded_pipeline(num_workers, worker):
    """The tutorial's pipeline (its part 2) on one worker's shard, from a position fed at its start.

    Returns the placeholders, the initializer (named dataset_init), and the next
    batch: the indices of its samples in the data set, their features and labels.
    """
    batch_size_ph = tf.placeholder(tf.int64, [], name=sar.BATCH_SIZE_KEY)
    features_ph = tf.placeholder(tf.float32, [None, None, sar.NUM_FEATURES], name=sar.FEATURES_KEY)
    labels_ph = tf.placeholder(tf.int32, [None, sar.NUM_CLASSES], name=sar.LABELS_KEY)
    skip_batches = tf.placeholder_with_default(tf.constant(0, tf.int64), [], SKIP_BATCHES_KEY)
    placeholders = {
        sar.BATCH_SIZE_KEY: batch_size_ph,
        sar.FEATURES_KEY: features_ph,
        sar.LABELS_KEY: labels_ph,
        SKIP_BATCHES_KEY: skip_batches,
    }
    # Each sample's index in the data set rides along, so that the worker can say what it read.
    indices = tf.range(tf.shape(features_ph, out_type=tf.int64)[0])
    dataset = tf.data.Dataset.from_tensor_slices((indices, features_ph, labels_ph))
    # Worker i reads samples i, i + N, i + 2N...: a shard of its own, the same on every run.
    dataset = dataset.shard(num_workers, worker).batch(batch_size_ph).skip(skip_batches)
    iterator = tf.data.Iterator.from_structure(dataset.output_types, dataset.output_shapes)
    init_op = iterator.make_initializer(dataset, name=sar.DATASET_INIT)
    return placeholders, init_op, iterator.get_next()


def build_positions(num_workers):
    """The variables, on the first parameter server, that say where the workers stand."""

    def variable(name, shape, dtype):
        # Plain (reference) variables: scatter_add adds to one worker's count in place.
        initializer = tf.zeros_initializer()
        return tf.get_variable(name, shape, dtype, initializer, trainable=False, use_resource=False)

    with tf.device("/job:ps/task:0"):
        # Each worker's count of the batches it trained on: the position of its
        # iterator, kept where the model is, not where the iterator is.
        batches_read = variable("batches_read", [num_workers], tf.int64)
        # What the chief's checkpoints hold of it: a copy taken before each save.
        batches_in_checkpoint = variable("batches_in_checkpoint", [num_workers], tf.int64)
        # Set by the chief after its last checkpoint: the parameter servers may end.
        training_done = variable("training_done", [], tf.bool)
    return batches_read, batches_in_checkpoint, training_done


def build_worker_graph(cluster, num_workers, worker):
    """One worker's graph: the model's variables on the parameter servers, its iterator here."""
    here = "/job:worker/task:{}".format(worker)
    with tf.device(tf.train.replica_device_setter(worker_device=here, cluster=cluster)):
        placeholders, init_op, next_batch = build_sharded_pipeline(num_workers, worker)
        indices, features, labels = next_batch
        # The tutorial's model and optimizer, built as in its own graph.
        with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
            logits = sar.build_model(features)
            train_op = sar.build_train_op(logits, labels)
    batches_read, batches_in_checkpoint, training_done = build_positions(num_workers)
    # The count goes up in the session.run of the update, once the update is
    # applied: a worker's count never runs ahead of the model.
    with tf.control_dependencies([train_op]):
        counts = tf.scatter_add(batches_read, [worker], [1], use_locking=True)
    with tf.control_dependencies([counts]):
        global_step = tf.identity(tf.train.get_global_step().read_value())
    # The chief saves the model and the copy of the counts, not the counts that
    # the workers update as it saves.
    unsaved = (batches_read, training_done)
    saved = [var for var in tf.global_variables() if all(var is not u for u in unsaved)]
    return types.SimpleNamespace(
        placeholders=placeholders,
        init_op=init_op,
        step={"indices": indices, "counts": counts, "global_step": global_step},
        batches_read=batches_read,
        saved=saved,
        saver=tf.train.Saver(var_list=saved, max_to_keep=2),
        snapshot=tf.assign(batches_in_checkpoint, batches_read),
        resume_counts=tf.assign(batches_read, batches_in_checkpoint),
        ready=tf.reduce_all([tf.is_variable_initialized(var) for var in tf.global_variables()]),
        initialize=tf.variables_initializer(saved + [training_done]),
        initialize_counts=batches_read.initializer,
        initialize_done=training_done.initializer,
        done=training_done.assign(True),
    )


def session_config(*devices):
    """A session that sees only these devices (and so waits for no other process), on the CPU."""
    return tf.ConfigProto(device_filters=list(devices), device_count={"GPU": 0})


# The sessions on the cluster, never closed: closing one asks the parameter
# server to let go of it, and waits, as long as it takes, for a parameter
# server that may have ended (the chief's last act ends it). The process ends
# with os._exit, which runs no finalizer that would close them.
SESSIONS = []


def cluster_session(server, *devices):
    """A session on this process's server that sees only these devices, kept open."""
    sess = tf.Session(server.target, config=session_config(*devices))
    SESSIONS.append(sess)
    return sess


def start_server(cluster, kind, index):
    """Starts this process's tf.train.Server; raises UsageError, in one line, if it cannot."""
    address = cluster.as_dict()[kind][index]
    with sar.one_line_errors("cannot start {} at {}: {reason}", NAME, address):
        return tf.train.Server(cluster, kind, index, config=session_config())


# -----------------------------------------------------------------------------
# The chief: the model restored or initialized once, and checkpoints of it and of every count


def check_checkpoint(path, saved_variables, num_workers):
    """Raises UsageError, in one line, unless the chief can resume from the checkpoint at path."""
    variables = {var.op.name: var.shape.as_list() for var in saved_variables}
    damaged = "cannot resume from {}: it is damaged, or not a checkpoint of this program ({reason})"
    with sar.one_line_errors(damaged, path):
        saved = sar.read_checkpoint(path, sorted(variables)).get_variable_to_shape_map()
    counts = saved.get("batches_in_checkpoint")
    if counts is None:
        line = "cannot resume from {}: it holds no worker's position: this program did not write it"
        raise sar.UsageError(line.format(path))
    if counts != [num_workers]:
        line = "cannot resume from {}: it was written by {} workers, not {}: resume it with as "
        line += "many, or start anew in another --checkpoint-dir"
        raise sar.UsageError(line.format(path, counts[0], num_workers))
    wrong = [name for name in sorted(variables) if saved.get(name) != variables[name]]
    if wrong:
        raise sar.UsageError(damaged.format(path, reason="no {} of its shape".format(wrong[0])))


def prepare(sess, ops, checkpoint_dir):
    """Restores or initializes the model on the parameter servers, unless they hold it already."""
    if sess.run(ops.ready):
        # The parameter servers lived on, and the chief alone was restarted: what
        # they hold is newer than any checkpoint, the other workers' counts too.
        return "takes over the model and the counts on the parameter server"
    path = tf.train.latest_checkpoint(checkpoint_dir)
    if path is None:
        sess.run(ops.initialize)
        sess.run(ops.initialize_counts)  # Last: the other workers wait for every variable.
        return None
    # The model and the copy of the counts come back together, as the chief
    # saved them; each worker then resumes from its count at that moment.
    ops.saver.restore(sess, path)
    sess.run(ops.initialize_done)
    counts = sess.run(ops.resume_counts)  # Last: the other workers wait for every variable.
    line = "restored {}: the model, and the batches each worker had read: {}"
    return line.format(path, ", ".join(str(count) for count in counts))


class Checkpoints:
    """The chief's checkpoints: the model and every worker's count, saved together."""

    def __init__(self, sess, ops, checkpoint_dir):
        self.sess, self.ops = sess, ops
        self.prefix = os.path.join(checkpoint_dir, sar.CHECKPOINT_NAME)
        state = tf.train.get_checkpoint_state(checkpoint_dir)
        self.path = state.model_checkpoint_path if state else None
        if state:  # Take over the earlier runs' checkpoints, so that max_to_keep counts them too.
            ops.saver.recover_last_checkpoints(state.all_model_checkpoint_paths)
        self.step = int(self.path.rsplit("-", 1)[1]) if state else -1

    def save(self):
        """Saves a checkpoint if a worker has trained since the last one; returns the counts."""
        # The copy of the counts first, then the Saver reads the model: a batch
        # counted was applied before the copy, so it is in the model saved.
        counts = self.sess.run(self.ops.snapshot)
        # Named by the number of batches the counts hold: it only grows, so no
        # checkpoint is ever written over another of the same name.
        if counts.sum() > self.step:
            self.step = int(counts.sum())
            # The positions first, read before TensorFlow's import by the next run:
            # the checkpoint counts once the Saver names it in its checkpoint file.
            positions = "{}-{}{}".format(self.prefix, self.step, POSITIONS)
            with open(positions + ".tmp", "w") as file:
                json.dump({"counts": [int(count) for count in counts]}, file)
            os.replace(positions + ".tmp", positions)
            saver, sess = self.ops.saver, self.sess
            self.path = saver.save(sess, self.prefix, self.step, write_meta_graph=False)
            # Those of the checkpoints the Saver deleted (it keeps two) go with them.
            folder = os.path.dirname(self.prefix)
            for name in os.listdir(folder):
                prefix = os.path.join(folder, name[: -len(POSITIONS)])
                if name.endswith(POSITIONS) and not os.path.exists(prefix + ".index"):
                    os.remove(os.path.join(folder, name))
        return counts


# -----------------------------------------------------------------------------
# A worker: initialize its iterator where its count says, then train


def train_step(sess, step, worker, last, length):
    """Runs one step of this worker and prints what it read; returns the worker's new count."""
    # A signal that comes during a step takes effect after its line is printed
    # (main's StopSignals): what a worker printed is what it trained on.
    values = sess.run(step)
    count = int(values["counts"][worker])
    epoch, batch = divmod(count - 1, length)
    line = "step {} of {}, epoch {}, batch {} | global step {} | samples {}"
    samples = " ".join(str(index) for index in values["indices"])
    say(line.format(count, last, epoch, batch, values["global_step"], samples))
    return count


def train(sess, ops, worker, num_workers, max_steps, checkpoints):
    """Trains this worker from its count to its last step, or to --max-steps; returns its count."""
    features_array, labels_array = sar.make_data()
    feed = sar.make_feed(ops.placeholders, features_array, labels_array, batch_size(num_workers))
    length = epoch_length(num_workers, worker)
    last = sar.EPOCHS * length
    count = STATE["count"] = int(sess.run(ops.batches_read)[worker])
    STATE["last"] = last
    if count:
        epoch, batch = divmod(count, length)
        say("resumes after its step {} of {}: epoch {}, batch {}".format(count, last, epoch, batch))
    first = True
    while count < last_steps(num_workers, max_steps)[worker]:
        # Initialize the iterator at each epoch's start, and where the count says
        # when resuming: the position is the count, as --shuffle's is the step.
        batch = count % length
        if first or batch == 0:
            feed[ops.placeholders[SKIP_BATCHES_KEY]] = batch
            sess.run(ops.init_op, feed_dict=feed)
            first = False
        # (STATE first: a signal takes effect as train_step returns.)
        counted = STATE["count"] = train_step(sess, ops.step, worker, last, length)
        if counted != count + 1:
            # Only this process adds to its count: another step means another
            # process in its place (the same TF_CONFIG twice), and no position holds.
            line = "its count went from {} to {} in one step: is another process worker {} too?"
            raise PeerLost(line.format(count, counted, worker))
        count = counted
        if checkpoints:
            checkpoints.save()
    return count


class PeerLost(Exception):
    """Another process has not done its part within --peer-timeout, or is in this one's
    place: said in one line."""


class Waiting:
    """How long this process has waited for another since it last saw it go on."""

    def __init__(self, seconds):
        self.seconds, self.since, self.seen = seconds, time.time(), None

    def check(self, seen, what, then=""):
        """Notes what the other process shows (its count); raises PeerLost if it stood still."""
        if self.seen is None or seen != self.seen:
            self.since, self.seen = time.time(), seen
        elif time.time() - self.since > self.seconds:
            then = "; " + then if then else ""
            raise PeerLost("waited {} s for {}: ends{}".format(self.seconds, what, then))


def wait_for_the_workers(checkpoints, ends, peer_timeout):
    """The chief, after its own steps: saves as the others go on, until each has reached its end."""
    waiting = Waiting(peer_timeout)
    while True:
        counts = checkpoints.save()
        if (counts >= ends).all():
            return counts
        behind = [
            "worker {} (at its step {} of {})".format(worker, counts[worker], ends[worker])
            for worker in range(len(ends))
            if counts[worker] < ends[worker]
        ]
        then = "{} holds every count, and the same command resumes from it"
        waiting.check(
            tuple(counts), " and ".join(behind) + " to train on", then.format(checkpoints.path)
        )
        time.sleep(POLL_SECONDS)


def one_line(array):
    """An array as numpy prints it, on one line however long (numpy wraps at 75 characters)."""
    return np.array2string(array, max_line_width=1000)


def export(checkpoint_path, export_dir):
    """Exports the checkpoint's model as the tutorial does, through its staging folder and swap."""
    features_array, labels_array = sar.make_data()
    staging = sar.make_staging(export_dir)
    try:
        # The tutorial's own graph, not the cluster's: no devices, no shard, no
        # counts, so that the export serves as the tutorial's does. Only its
        # variables are read from the checkpoint.
        with tf.Graph().as_default() as graph:
            placeholders, _, init_op, model_input, _ = sar.build_input_pipeline()
            with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
                logits = sar.build_model(model_input)
            with sar.new_session(graph) as sess:
                tf.train.Saver().restore(sess, checkpoint_path)
                feed = sar.make_feed(placeholders, features_array, labels_array, sar.BATCH_SIZE)
                inferred = list(sar.iterate(sess, init_op, feed, logits))
                for batch, value in enumerate(inferred):
                    line = "Epoch {}, batch {} | Final inference | Sample value: {}"
                    say(line.format(sar.EPOCHS, batch, one_line(value[0])))
                say("Saving to {}".format(export_dir))
                new = os.path.join(staging, "new")
                sar.save_model(sess, new, placeholders, model_input, logits, inferred)
        sar.swap_into_place(new, export_dir, staging)
    finally:
        sar.remove_staging(staging, export_dir)
    say("Restoring from {}".format(export_dir))
    restored = sar.infer_restored(export_dir, features_array, labels_array, sar.BATCH_SIZE)
    for value in restored:
        say("Restored values: {}".format(one_line(value[0])))
    match = sar.inferences_match(inferred, restored)
    say("Inferences match: {}".format(match))
    return match


def run_worker(cluster, worker, args):
    """One worker's run, the chief's included; returns the exit status."""
    num_workers = len(cluster.as_dict()["worker"])
    chief = worker == 0
    here = "/job:worker/task:{}".format(worker)
    with tf.Graph().as_default():
        ops = build_worker_graph(cluster, num_workers, worker)
        path = tf.train.latest_checkpoint(args.checkpoint_dir) if chief else None
        if path:  # Before the server starts: a refusal needs no cluster.
            check_checkpoint(path, ops.saved, num_workers)
        server = start_server(cluster, "worker", worker)
        sess = cluster_session(server, "/job:ps", here)
        checkpoints = None
        if chief:
            said = prepare(sess, ops, args.checkpoint_dir)
            if said:
                say(said)
            checkpoints = STATE["checkpoints"] = Checkpoints(sess, ops, args.checkpoint_dir)
        else:
            # The chief restores or initializes the model, the counts last.
            waiting = Waiting(args.peer_timeout)
            while not sess.run(ops.ready):
                waiting.check(0, "worker 0, the chief, to restore or initialize the model")
                time.sleep(POLL_SECONDS)
        count = train(sess, ops, worker, num_workers, args.max_steps, checkpoints)
        if count < STATE["last"]:
            say("stopped as --max-steps asked, after its step {}".format(count))
        elif not chief:
            say("done: {} epochs of its shard".format(sar.EPOCHS))
        if not chief:
            return 0
        ends = last_steps(num_workers, args.max_steps)
        counts = wait_for_the_workers(checkpoints, ends, args.peer_timeout)
        sess.run(ops.done)
    line = "{} holds the model and the batches each worker read: {}"
    say(line.format(checkpoints.path, ", ".join(str(count) for count in counts)))
    if (counts < last_steps(num_workers)).any():
        say("run the same command without --max-steps to resume from it")
        return 0
    return 0 if export(checkpoints.path, args.export_dir) else 1


# -----------------------------------------------------------------------------
# A parameter server: it serves the variables until the chief is done


def serve(cluster, index, peer_timeout):
    """Serves this parameter server's variables until the chief has saved its last checkpoint."""
    server = start_server(cluster, "ps", index)
    say("serving at {}".format(cluster.as_dict()["ps"][index]))
    with tf.Graph().as_default():
        batches_read, _, training_done = build_positions(len(cluster.as_dict()["worker"]))
        done_initialized = tf.is_variable_initialized(training_done)
        counts_initialized = tf.is_variable_initialized(batches_read)
        devices = ("/job:ps/task:0", "/job:ps/task:{}".format(index))
        sess = cluster_session(server, *devices)
        # Twice as long as the workers: the chief, which holds the checkpoint,
        # ends first and says why, while this server still holds the variables.
        waiting = Waiting(2 * peer_timeout)
        while not (sess.run(done_initialized) and sess.run(training_done)):
            # The workers' counts go on while they train: a cluster that stood
            # still that long has lost a process, and the chief's checkpoint the rest.
            counts = tuple(sess.run(batches_read)) if sess.run(counts_initialized) else ()
            what = "the workers to train on, or the chief to end (counts: {})".format(
                ", ".join(str(count) for count in counts) or "none yet"
            )
            waiting.check(counts, what, "the chief's last checkpoint has the variables")
            time.sleep(POLL_SECONDS)
    # The workers' sessions clean up after their last steps on this server, and
    # log an error if it is gone: it ends once each worker's process has, or
    # after --peer-timeout, whichever comes first.
    deadline = time.time() + peer_timeout
    for address in cluster.as_dict()["worker"]:
        while listening(address) and time.time() < deadline:
            time.sleep(POLL_SECONDS)
    say("the chief has saved its last checkpoint: ends")


def listening(address):
    """Tells whether a process still listens at address (host:port)."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=POLL_SECONDS).close()
        return True
    except OSError:
        return False


# -----------------------------------------------------------------------------
# What each process prints, and how it stops

# Where this worker stands, for the line that says so if it is interrupted.
STATE = {"count": 0, "last": None, "checkpoints": None}


def say(text):
    """Prints a line, named after this process."""
    print_line("{}: {}".format(NAME, text))


def explain_interrupt(signum, kind, export_dir, export_before):
    """The one line an interrupted process ends with: what it leaves."""
    said = "interrupted by {}".format(signal.Signals(signum).name)
    if kind == "ps":
        return said + ": the variables it held are gone; the chief's last checkpoint has them"
    if STATE["last"] is not None:
        said += " after its step {} of {}".format(STATE["count"], STATE["last"])
    checkpoints = STATE["checkpoints"]
    if checkpoints is None:
        return said + "; its count on the parameter server, or the chief's checkpoint, resumes it"
    if checkpoints.path is None:
        said += "; no checkpoint is complete yet"
    else:
        line = "; {} is its last checkpoint, and the same command resumes from it"
        said += line.format(checkpoints.path)
    now = sar.identity(export_dir)
    if now is None:
        return said + "; nothing was exported to {}".format(export_dir)
    if now != export_before:
        return said + "; {} holds this run's export".format(export_dir)
    return said + "; the previous export is in place in {}".format(export_dir)


def lost_reason(error):
    """What TensorFlow says of a server it lost: the first line of its message that says why."""
    # The message starts with headers: "Graph execution error:", "From /job:ps/...:".
    header = re.compile(r"(\w+: )?(Graph execution error|From /job:)")
    lines = [line.strip() for line in error.message.splitlines()]
    said = [line for line in lines if re.search("[a-z]", line) and not header.match(line)]
    return said[0] if said else type(error).__name__


def main(args, cluster_spec, kind, index):
    """Runs this process of the cluster; returns its exit status."""
    sar.setup_tensorflow()
    cluster = tf.train.ClusterSpec(cluster_spec)
    export_before = sar.identity(args.export_dir)
    # A signal takes effect as the run leaves these: a step once its line is
    # printed, a graph once it is built (TensorFlow's scopes, cut short, break
    # with another error), the export once it is in place.
    protected = (train_step, build_worker_graph, build_positions, export)
    stop_signals = sar.StopSignals(protected=protected)
    stop_signals.install()
    if kind == "ps" and LAUNCHER_ENV in os.environ:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Still: the launcher stops it, last.
    try:
        if kind == "ps":
            serve(cluster, index, args.peer_timeout)
            return 0
        if index == 0:
            sar.check_export_dir(args.export_dir)  # It also cleans up after killed exports.
        return run_worker(cluster, index, args)
    except sar.UsageError as error:
        print_line("{}: error: {}".format(NAME, error), sys.stderr)
        return 2
    except PeerLost as lost:
        print_line("{}: {}".format(NAME, lost), sys.stderr)
        return 1
    except sar.Interrupted as interrupted:
        line = explain_interrupt(interrupted.signum, kind, args.export_dir, export_before)
        print_line("{}: {}".format(NAME, line), sys.stderr)
        return 128 + interrupted.signum
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        # A parameter server is gone, and with it the model: nothing to train.
        line = "{}: lost the parameter server ({}); the chief's last checkpoint resumes the run"
        print_line(line.format(NAME, lost_reason(error)), sys.stderr)
        return 1
    finally:
        stop_signals.uninstall()


if __name__ == "__main__":
    STATUS = main(ARGS, CLUSTER, KIND, INDEX)
    # Python's own exit would close the sessions on the cluster, and wait for
    # servers that may be gone (SESSIONS): the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STATUS)
