"""Forks runs of Python programs from a process that has imported TensorFlow already.

    python fork_server.py script SOCKET   imports the tutorial (TF1 graphs, tf-keras)
    python fork_server.py keras3 SOCKET   imports TensorFlow and Keras 3, as TF2 code runs

Each run is a process of its own, with its own pid, exit status, stdout and
stderr, that a test signals or kill -9s as it would a user's; none pays
TensorFlow's import again (seconds each: without this, most of the suite's time
would be imports). The server builds nothing, no graph and no session, so that
each run starts TensorFlow's runtime of its own.

For each connection, a request (JSON: the folder, the argv after `python`, the
environment, a moment to wait at) and two file descriptors, for stdout and
stderr, the server forks a waiter, which forks the run and writes its pid, then
its exit status as Popen gives it (-9 for a kill -9), a line each.

A moment (the tutorial only) makes the run wait there until a signal ends it,
so that a test lands a kill or an interrupt exactly there, however busy the
machine; it prints PAUSED when it waits. See wait_at.

Imported, it gives a client send(), which makes the request.
"""

import json
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The request's fields, and what each is when the client leaves it out.
REQUEST = {"env": None, "session": False, "before": None, "moment": None, "count": 1}


def send(path, cwd, argv, fds, **fields):
    """Asks the server at path for a run (see REQUEST), its stdout and stderr fds; returns
    the connection, on which its pid, then its exit status, come a line each."""
    request = dict(REQUEST, cwd=str(cwd), argv=[str(arg) for arg in argv])
    assert set(fields) <= set(REQUEST), fields
    request.update(fields)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], fds)
    return connection


def load(flavour):
    """Imports what runs of that flavour use, before any fork."""
    global FLAVOUR, BASE_PATH, SET_BY_IMPORTS, sar, checkpoint_management, saver
    FLAVOUR = flavour
    BASE_PATH = sys.path[1:]  # Without the folder of this file, which Python put first.
    before_imports = dict(os.environ)
    if flavour == "script":
        sys.path.insert(0, ROOT)
        # The tutorial first: it sets what must be set before TensorFlow's import,
        # which its main() makes once the command line is checked: made here, once.
        import save_and_restore as sar

        sar.import_tensorflow()
        # isort: split
        from tensorflow.python.checkpoint import checkpoint_management
        from tensorflow.python.training import saver
    else:
        assert flavour == "keras3", flavour
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    # What the imports set in the environment (the tutorial's TF_USE_LEGACY_KERAS,
    # say), which the same imports would have set in each run.
    SET_BY_IMPORTS = {
        name: value for name, value in os.environ.items() if before_imports.get(name) != value
    }


def pause():
    print("PAUSED", flush=True)
    while True:
        time.sleep(60)


def wait_for_go():
    print("PAUSED", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.01)


def pausing(function, before, count):
    """function, made to pause on its count-th call: before it, or once it has returned."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if before and len(calls) == count:
            pause()
        result = function(*args, **kwargs)
        if not before and len(calls) == count:
            pause()
        return result

    return wrapper


def wait_at(moment, count):
    """Makes the tutorial wait at moment, the count-th time it comes (1 for the first)."""
    if moment == "checkpoint written":
        # Saver.save writes the checkpoint's files, then names it in `checkpoint`:
        # this waits in between, inside TensorFlow's code (for a kill -9).
        update = checkpoint_management.update_checkpoint_state_internal
        checkpoint_management.update_checkpoint_state_internal = pausing(update, True, count)
    elif moment == "checkpoint named":  # Once Saver.save has returned to train().
        sar.tf.train.Saver.save = pausing(sar.tf.train.Saver.save, False, count)
    elif moment == "export written":  # By simple_save, before the rest and the swap.
        sar.tf.saved_model.simple_save = pausing(sar.tf.saved_model.simple_save, False, count)
    elif moment == "export building":
        # Inside TensorFlow's code: simple_save building its Saver, until a file
        # named go appears; then, back in the script's save_model, the same pause.
        build = saver.Saver.build

        def building(self, *args, **kwargs):
            wait_for_go()
            result = build(self, *args, **kwargs)
            print("BUILT", flush=True)
            return result

        saver.Saver.build = building
        sar.tf.saved_model.simple_save = pausing(sar.tf.saved_model.simple_save, False, count)
    elif moment == "run over":  # The verdict all that is left to print, until "go".
        uninstall = sar.StopSignals.uninstall
        calls = []

        def over(self):
            uninstall(self)
            calls.append(1)
            if len(calls) == count:
                wait_for_go()

        sar.StopSignals.uninstall = over
    elif moment == "clean-up":  # Removing the staging folder, after the swap, until "go".
        rmtree = sar.shutil.rmtree

        def removing(*args, **kwargs):
            wait_for_go()
            return rmtree(*args, **kwargs)

        sar.shutil.rmtree = removing
    else:
        assert moment is None, moment


def main_of(argv):
    """What `python ARGV` runs: a file, -c CODE or -m MODULE; sys.argv and sys.path as Python sets them."""
    if argv[0] == "-c":
        sys.argv, sys.path[:] = ["-c"] + argv[2:], [""] + BASE_PATH
        return lambda: exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    if argv[0] == "-m":
        sys.argv, sys.path[:] = argv[1:], [os.getcwd()] + BASE_PATH
        return lambda: runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    path = os.path.abspath(argv[0])
    sys.argv, sys.path[:] = argv, [os.path.dirname(path)] + BASE_PATH
    if FLAVOUR == "script" and path == os.path.abspath(sar.__file__):
        return lambda: sys.exit(sar.main(argv[1:]))  # The module this process imported.
    return lambda: runpy.run_path(path, run_name="__main__")


def run(request, fds):
    """The run itself; it ends the process, as `python ARGV` would end."""
    if request["session"]:
        os.setsid()  # A process group of its own, for a test that signals the group.
    os.chdir(request["cwd"])
    if request["env"] is not None:
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in SET_BY_IMPORTS.items():
            os.environ.setdefault(name, value)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in zip([null] + fds, (0, 1, 2)):
        os.dup2(fd, target)
        os.close(fd)
    code = 0
    try:
        program = main_of(request["argv"])
        if request["before"]:
            exec(compile(request["before"], "<before>", "exec"), {})
        if request["moment"]:
            wait_at(request["moment"], request["count"])
        program()
    except SystemExit as exit:
        code = exit.code
    except KeyboardInterrupt:  # As Python ends: the traceback, then killed by SIGINT.
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def serve(path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # The waiters end unwaited for.
    print("READY", flush=True)
    while True:
        # stdin is a pipe from the process that started this server: at its
        # end (that process is gone, however it ended), so is this server.
        ready, _, _ = select.select([server, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1 << 10):
            return
        if server not in ready:
            continue
        connection, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        while not message.endswith(b"\n"):
            message += connection.recv(1 << 20)
        if os.fork() == 0:  # The waiter.
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            pid = os.fork()
            if pid == 0:
                connection.close()
                run(json.loads(message.decode()), fds)
            for fd in fds:
                os.close(fd)
            connection.sendall(b"%d\n" % pid)
            _, status = os.waitpid(pid, 0)
            connection.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
            os._exit(0)
        connection.close()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    load(sys.argv[1])
    serve(sys.argv[2])
