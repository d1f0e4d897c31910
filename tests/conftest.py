"""Shared helpers: run the script as a user does, and import it for finer tests."""

import atexit
import collections
import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import fork_server as fork_server_client
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "save_and_restore.py")
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
EXAMPLES = os.path.join(ROOT, "examples")

sys.path.insert(0, ROOT)

# What TensorFlow 2.21 itself prints on stderr whatever the script does: the
# notes its C++ side logs while it is imported, before any setting can take
# effect, and the CUDA driver probe that fails on machines without an NVIDIA
# driver. Anything else on stderr comes from the script.
TF_NOTICES = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: "
    r"|E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: "
)


def read(path):
    """The text of a file."""
    with open(path) as file:
        return file.read()


def doc_files():
    """The README and every page under docs/."""
    pages = sorted(name for name in os.listdir(DOCS) if name.endswith(".md"))
    return [README] + [os.path.join(DOCS, name) for name in pages]


def doc_section(heading):
    """The text under a Markdown heading, found in the README or any page of docs/.

    `heading` is the heading's text, without the #s. The section runs to the next
    heading of the same or a higher level. Text moves between pages; tests find it.
    """
    found = []
    for path in doc_files():
        lines = read(path).splitlines(keepends=True)
        in_code = False
        for number, line in enumerate(lines):
            in_code ^= line.startswith("```")
            match = re.match(r"(#+) (.*)$", line.rstrip("\n"))
            if in_code or not match or match.group(2) != heading:
                continue
            level, end = len(match.group(1)), len(lines)
            code = False
            for later in range(number + 1, len(lines)):
                code ^= lines[later].startswith("```")
                other = re.match(r"(#+) ", lines[later])
                if not code and other and len(other.group(1)) <= level:
                    end = later
                    break
            found.append("".join(lines[number + 1 : end]))
    assert len(found) == 1, f"{len(found)} sections headed {heading!r}"
    return found[0]


def code_blocks(heading, language):
    """The fenced code blocks of one language under a heading, in order."""
    return re.findall(
        r"^```" + language + r"\n(.*?)^```", doc_section(heading), re.DOTALL | re.MULTILINE
    )


def transcript(heading, command):
    """The output a text block under heading shows for `$ command`, up to the next `$`."""
    for block in code_blocks(heading, "text"):
        if block.startswith(f"$ {command}\n") or f"\n$ {command}\n" in block:
            return block.split(f"$ {command}\n", 1)[1].split("\n$ ", 1)[0].rstrip("\n") + "\n"
    raise AssertionError(f"no transcript of {command!r} under {heading!r}")


# How a page names the file of examples/ that a python block shows: a link to
# it, the last one in the text before the block.
EXAMPLE_LINK = re.compile(r"\]\((?:\.\./)?examples/((?:\w+/)*\w+\.py)\)")


def example(name):
    """The path of a program of examples/, as a user runs it: python3 <that path>."""
    path = os.path.join(EXAMPLES, name)
    assert os.path.isfile(path), path
    return path


def page_programs():
    """Every python block of the README and docs/ that shows a file of examples/.

    Returns [(page, file name or None, code, whole)]: whole when the block is a
    complete program (it starts with its imports or a docstring), which must be
    the file itself; otherwise it is an excerpt, which must be in the file.
    """
    programs = []
    for path in doc_files():
        text, start = read(path), 0
        for block in re.finditer(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
            code = block.group(1)
            names = EXAMPLE_LINK.findall(text[start : block.start()])
            whole = code.startswith(("import ", "from ", '"""'))
            if names or whole:
                programs.append((path, names[-1] if names else None, code, whole))
            start = block.end()
    return programs


# What the programs import that takes seconds. Stand-ins for them, found first
# on the path, end the process the moment one is imported: a refusal that
# comes out instead came before them.
HEAVY = ("tensorflow", "keras", "onnxruntime", "ai_edge_litert", "tf2onnx")
IMPORTED = "imported {} before checking its paths"


def run_light(env, folder, program, *args):
    """Runs `python PROGRAM ARGS` in folder, in env (no_heavy_imports'): what it gave.

    What it answers there, it answers before anything heavy is imported.
    """
    return subprocess.run(
        [sys.executable, program, *args],
        cwd=str(folder),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds(RUN),
    )


@pytest.fixture(scope="session")
def no_heavy_imports(tmp_path_factory):
    """An environment whose heavy modules stop the process when imported."""
    folder = tmp_path_factory.mktemp("stand_ins")
    for name in HEAVY:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise SystemExit({IMPORTED.format(name)!r})\n")
    return dict(os.environ, PYTHONPATH=str(folder))


# What a run writes beside its model, and how it prints its final inference.
EXPECTED = os.path.join("simple", "assets.extra", "expected_logits.npy")
FINAL = "Final inference | Sample value: "


def training_lines(stdout):
    """The lines a run prints for its training steps and final inference."""
    return [line for line in stdout.splitlines() if line.startswith("Epoch")]


def from_saving(stdout):
    """What a full run prints from its export on."""
    return stdout[stdout.index("\nSaving to") :]


def after(stdout, marker):
    """The text after marker on each line of stdout that contains it."""
    return [line.split(marker, 1)[1] for line in stdout.splitlines() if marker in line]


def parse_array(text):
    """The numbers of an array as numpy prints it, e.g. "[ 0.5 -0.25]"."""
    return np.array([float(x) for x in text.strip("[] ").split()])


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def assert_same_output(expected, actual):
    """Checks a README transcript against real output: same words, numbers within 1e-5."""
    expected, actual = expected.splitlines(), actual.splitlines()
    assert len(expected) == len(actual), (expected, actual)
    for want, got in zip(expected, actual):
        # The words must be the same; the numbers may differ in their last
        # digits on another CPU, which also moves numpy's padding: compare
        # without the spaces.
        words = ["".join(NUMBER.sub("#", line).split()) for line in (want, got)]
        assert words[0] == words[1], got
        want_numbers = [float(x) for x in NUMBER.findall(want)]
        got_numbers = [float(x) for x in NUMBER.findall(got)]
        np.testing.assert_allclose(got_numbers, want_numbers, atol=1e-5, err_msg=got)


def script_stderr(stderr):
    """Returns the stderr lines that are not TensorFlow's own start-up notices."""
    return [line for line in stderr.splitlines() if line and not TF_NOTICES.match(line)]


def start_python(cwd, *args, stderr=subprocess.PIPE):
    """Starts `python ARGS` in cwd; its stdout comes line by line. Killed after the test."""
    process = subprocess.Popen(
        [sys.executable] + list(args),
        cwd=str(cwd),
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    STARTED.append(process)
    return process


def start_script(cwd, *args, stderr=subprocess.PIPE):
    """Starts `python save_and_restore.py ARGS` in cwd; its stdout comes line by line."""
    return start_python(cwd, SCRIPT, *args, stderr=stderr)


# Runs forked from a process that has imported TensorFlow already (fork_server.py):
# each is a process of its own, that a test signals or kills as a user's, and
# none pays TensorFlow's import again, which costs more than a run. What only a
# new interpreter shows (the script's start-up, its argument errors, what is
# printed as TensorFlow is imported) the tests check with real runs:
# run_script, start_script, full_run, and the programs' tests of bad paths.
class Forked:
    """A run forked by a fork server: what the tests use of subprocess.Popen.

    argv is what follows `python`; flavour, the server's ("script" or
    "keras3"); env, the run's environment (by default the server's: this one's,
    without what the tutorial's import set in it); session, a process group of its
    own; before, code run first; moment and count, where the tutorial waits;
    preset, (name, value) pairs a program sets in the environment before its
    imports (TF_CPP_MIN_LOG_LEVEL, which TensorFlow reads as it is imported),
    which the server must import under.
    """

    def __init__(
        self,
        cwd,
        argv,
        flavour="script",
        env=None,
        stderr=subprocess.PIPE,
        session=False,
        before=None,
        moment=None,
        count=1,
        preset=(),
    ):
        out, out_end = os.pipe()
        if stderr == subprocess.DEVNULL:
            err, err_end = None, os.open(os.devnull, os.O_WRONLY)
        else:
            err, err_end = os.pipe()
        self._connection = fork_server_client.send(
            fork_server(flavour, *preset),
            cwd,
            argv,
            [out_end, err_end],
            env=env,
            session=session,
            before=before,
            moment=moment,
            count=count,
        )
        os.close(out_end)
        os.close(err_end)
        self.stdout = os.fdopen(out)
        self.stderr = None if err is None else os.fdopen(err)
        self._replies = b""
        self._readers = None
        self.args = ["python3", *argv]  # As a user would type it, for what a test says.
        self.session = session  # A process group of its own, its children in it.
        self.returncode = None
        self.pid = self._reply(block=True)
        STARTED.append(self)

    def _reply(self, block, timeout=None):
        """The next number the waiter sends; None if it has not come (block=False or timeout)."""
        while b"\n" not in self._replies:
            ready, _, _ = select.select([self._connection], [], [], timeout if block else 0)
            if not ready:
                return None
            data = self._connection.recv(64)
            assert data, "the fork server's waiter ended without a word"
            self._replies += data
        line, self._replies = self._replies.split(b"\n", 1)
        return int(line)

    def poll(self):
        if self.returncode is None:
            self.returncode = self._reply(block=False)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self._reply(block=True, timeout=timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(["fork"], timeout)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout=None):
        """Reads stdout and stderr to their ends, and waits: (stdout, stderr).

        Called again after a timeout, it goes on with the same readers, as Popen's does.
        """
        if self._readers is None:
            self._printed = {}
            self._readers = [
                threading.Thread(
                    target=lambda name=name, file=file: self._printed.update({name: file.read()}),
                    daemon=True,
                )
                for name, file in (("out", self.stdout), ("err", self.stderr))
                if file is not None and not file.closed  # Read already by an earlier call.
            ]
            for reader in self._readers:
                reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in self._readers:
            reader.join(None if deadline is None else max(0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(["fork"], timeout)
        self.wait(None if deadline is None else max(0, deadline - time.monotonic()))
        for file in (self.stdout, self.stderr, self._connection):
            if file is not None:
                file.close()
        return self._printed.get("out"), self._printed.get("err")


SERVERS = {}
# What importing save_and_restore sets in the environment, where none was.
SET_BY_THE_TUTORIAL = ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")


def user_environment(**more):
    """This process's environment as a user's shell has it, with more.

    Without what this session's import of the tutorial set in it: a program
    run in it sets those itself, or not, as it does for a user.
    """
    env = dict(os.environ, **more)
    for name in SET_BY_THE_TUTORIAL:
        env.pop(name, None)
    return env


def fork_server(flavour, *preset):
    """The socket of the fork server of that flavour and preset; it starts at the first call."""
    if (flavour, preset) not in SERVERS:
        folder = tempfile.mkdtemp(prefix="fork_server-")
        path = os.path.join(folder, "socket")
        # The server's own imports set what the tutorial sets, or not.
        env = user_environment(PYTHONUNBUFFERED="1")
        env.update(preset)
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fork_server.py")
        process = subprocess.Popen(
            [sys.executable, server, flavour, path],
            env=env,
            stdin=subprocess.PIPE,  # Its end, whatever ends this process, ends the server.
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout.readline() == "READY\n", "the fork server did not start"

        def stop():
            process.kill()
            process.communicate()
            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(stop)
        SERVERS[flavour, preset] = path
    return SERVERS[flavour, preset]


def forked_result(process, bound=None):
    """Waits for a forked run to end, within bound seconds (RUN): a Result."""
    out, err = finish(process, bound)
    return Result(process.returncode, out, err)


# How long a test waits for a process it started: long enough for what the
# process does on a slow, busy machine, and no longer, so that one that hangs
# fails its test at once, with what it printed, instead of holding a worker
# for minutes. TESTS_WAIT_FACTOR multiplies every bound (2 on a machine twice
# as slow).
WAIT_FACTOR = float(os.environ.get("TESTS_WAIT_FACTOR", "1"))
RUN = 60  # A run of the tutorial or of a program of examples/: 1 to 15 s here.
CLEAN_UP = 10  # What a killed process leaves to read.


def seconds(bound):
    """A bound of a wait, in seconds, on this machine."""
    return bound * WAIT_FACTOR


def end(process):
    """Kills process at once, with its process group where it leads one (what it started)."""
    with contextlib.suppress(ProcessLookupError):
        if getattr(process, "session", False) or os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)


def finish(process, bound=None, what=None):
    """Waits for process to end, within bound seconds (RUN): (stdout, stderr).

    Past the bound, the process is killed, its group with it, and the test fails
    at once, saying what it waited for and what the process printed.
    """
    limit = seconds(bound or RUN)
    try:
        return process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        end(process)
        out, err = process.communicate(timeout=seconds(CLEAN_UP))
        what = what or "`{}`".format(" ".join(map(str, process.args)))
        pytest.fail(
            f"waited {limit:.0f} s for {what} to end, and ended it; its output:\n"
            f"{(out or '')[-3000:]}\n{script_stderr(err or '')[-20:]}",
            pytrace=False,
        )


def fork_script(cwd, *args, stderr=subprocess.PIPE):
    """Starts a forked run of the script with ARGS in cwd: a Popen-like process."""
    return Forked(cwd, [SCRIPT, *args], stderr=stderr)


def run_forked(cwd, *args):
    """Runs the script with ARGS in cwd, forked: a Result."""
    return forked_result(Forked(cwd, [SCRIPT, *args]))


def pytest_addoption(parser):
    parser.addoption(
        "--in-order",
        action="store_true",
        help="also run every command of the README and its pages, in order (minutes)",
    )


def pytest_collection_modifyitems(config, items):
    """Puts the tests marked heavy where the workers start, the longest first.

    pytest-xdist's worksteal gives each worker an equal slice of the list, then
    moves tests from the end of the longest queue to an idle worker: a heavy
    test left at the end would run alone. Each heavy test goes to the worker
    with the least heavy seconds so far (its marker's argument), and the tests
    that read what it built once for the session follow it there, so that no
    other worker waits for it to be built.
    """
    # In a worker, xdist says how many there are; without xdist, one.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT") or config.getoption("numprocesses", 0)
    workers = (os.cpu_count() if workers in ("auto", "logical") else int(workers or 0)) or 1
    heavy = sorted(
        (item for item in items if item.get_closest_marker("heavy")),
        key=lambda item: -item.get_closest_marker("heavy").args[0],
    )
    slices, load = [[] for _ in range(workers)], [0] * workers
    for item in heavy:
        worker = load.index(min(load))
        load[worker] += item.get_closest_marker("heavy").args[0]
        shared = [name for name in SCENARIOS if name in item.fixturenames]
        slices[worker] += [item] + [
            other
            for other in items
            if other is not item
            and not other.get_closest_marker("heavy")
            and any(name in other.fixturenames for name in shared)
        ]
    placed = {id(item) for part in slices for item in part}
    light = [item for item in items if id(item) not in placed]
    size = -(-len(items) // workers)
    for part in slices:
        count = max(0, size - len(part))
        part += light[:count]
        light = light[count:]
    items[:] = [item for part in slices for item in part] + light


# What a heavy test builds once for the session, that other tests read.
SCENARIOS = ("local_runs", "one_worker_killed")


# The processes the tests start and watch: none outlives its test, even one that fails.
STARTED = []


@pytest.fixture(autouse=True)
def no_process_left():
    """Kills what a test started and left running (a paused run waits forever)."""
    yield
    while STARTED:
        process = STARTED.pop()
        end(process)  # Its group too: a run it started, a cluster's processes.
        process.communicate(timeout=seconds(CLEAN_UP))


def start_paused(cwd, moment, count, *args):
    """Starts a forked run of the script in cwd; returns (process, its stdout) once it waits at moment."""
    process = Forked(cwd, [SCRIPT, *args], moment=moment, count=count)
    printed = read_until(process, "PAUSED")
    assert printed.endswith("PAUSED\n"), printed
    return process, printed[: -len("PAUSED\n")]


def read_until(process, marker, bound=None):
    """Reads process's stdout up to the first line that starts with marker; returns it all.

    If it has not come within bound seconds (RUN), the process is killed, its
    group with it, and the test fails at once, saying what it waited for.
    """
    lines, limit = [], seconds(bound or RUN)
    timer = threading.Timer(limit, end, [process])
    timer.daemon = True
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(marker):
                return "".join(lines)
    finally:
        timer.cancel()
    ended = "ended it" if timer.finished.is_set() and process.poll() is not None else "it ended"
    pytest.fail(
        f"waited up to {limit:.0f} s for a line starting {marker!r}, and {ended} first; "
        f"it printed:\n{''.join(lines)[-3000:]}",
        pytrace=False,
    )


# What a run of the script gave: its exit status, stdout and stderr.
Result = collections.namedtuple("Result", "returncode stdout stderr")


def run_script(cwd, *args, bound=None):
    """Runs `python save_and_restore.py ARGS` in cwd, as a user would, within bound seconds (RUN)."""
    process = subprocess.Popen(
        [sys.executable, SCRIPT] + list(args),
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # A group of its own, ended with it.
    )
    out, err = finish(process, bound, f"`python save_and_restore.py {' '.join(args)}`")
    return Result(process.returncode, out, err)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, worker_id):
    """One default run of the script in a fresh folder: (folder, Result).

    One for the whole session: the first worker to ask runs it, the others
    wait for it and read what it printed.
    """
    import fcntl
    import json

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # Under pytest-xdist, this session's folder.
        shared = shared.parent
    folder, printed = shared / "full_run", shared / "full_run.json"
    with open(str(shared / "full_run.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not printed.exists():
            folder.mkdir()
            result = run_script(folder)
            printed.write_text(json.dumps([result.returncode, result.stdout, result.stderr]))
    return folder, Result(*json.loads(printed.read_text()))


@pytest.fixture(scope="session")
def sar():
    """The script, imported as a module."""
    import save_and_restore

    # What main() does first: TF1 graphs, as a run of the script builds them.
    save_and_restore.setup_tensorflow()
    return save_and_restore


@pytest.fixture
def run_main(sar, capfd, monkeypatch):
    """Runs the script's main(ARGS) in this process, in a folder: a Result.

    The same code as a run of the script, without paying TensorFlow's import
    again; stdout and stderr are captured at the file descriptors, so what
    TensorFlow's C++ side logs is in stderr too.
    """

    def run(cwd, *args):
        monkeypatch.chdir(str(cwd))
        capfd.readouterr()
        # main() handles SIGINT and SIGTERM itself: this process's own handlers come back after.
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            returncode = sar.main(list(args))
        except SystemExit as exit:
            returncode = exit.code
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        out, err = capfd.readouterr()
        return Result(returncode, out, err)

    return run
