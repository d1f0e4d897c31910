""".ci/versions: the command list behind each row of docs/versions.md, in one place."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
from conftest import ROOT, SCRIPT, Result, code_blocks, finish, fork_server, read

# The python3 that .ci/versions finds first on its PATH in these tests: its
# runs of the script (`python3 save_and_restore.py ARGS`, a copy in its own
# folder) are forked from the fork server (fork_server.send), with this
# process's stdout and stderr, so as not to pay TensorFlow's import eight
# times; anything else (its `python3 -` checks) is this Python, as it is.
FORKING_PYTHON = """#!{python}
import os, sys
argv = sys.argv[1:]
if not (argv and os.path.basename(argv[0]) == "save_and_restore.py"):
    os.execv({python!r}, [{python!r}] + argv)
sys.path.insert(0, {tests!r})
from fork_server import send
argv[0] = os.path.abspath(argv[0])
connection = send({server!r}, os.getcwd(), argv, [1, 2], env=dict(os.environ))
replies = b""
while replies.count(b"\\n") < 2:
    data = connection.recv(64)
    if not data:
        sys.exit("the fork server's waiter ended without a word")
    replies += data
status = int(replies.split(b"\\n")[1])
sys.exit(status if status >= 0 else 128 - status)
"""


def installed_versions(command, cwd=None):
    """Runs .ci/versions --installed (command: its path) with the TensorFlow of this Python."""
    with tempfile.TemporaryDirectory() as bin_folder:
        python = os.path.join(bin_folder, "python3")
        with open(python, "w") as file:
            server = fork_server("script")
            tests = os.path.dirname(os.path.abspath(__file__))
            file.write(FORKING_PYTHON.format(python=sys.executable, tests=tests, server=server))
        os.chmod(python, 0o755)
        path = os.pathsep.join([bin_folder, os.path.dirname(sys.executable), os.environ["PATH"]])
        process = subprocess.Popen(
            [command, "--installed"],
            cwd=None if cwd is None else str(cwd),
            env=dict(os.environ, PATH=path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Its group: the runs of the script it starts.
        )
        # Five steps, each a run or two of the script: 15 to 30 s here.
        out, err = finish(process, 180, f"`{command} --installed`")
        return Result(process.returncode, out, err)


def copy_with_a_broken_resume(folder, *changes):
    """A copy of the project in folder whose resumed run initializes its iterator
    again after restoring it: it reads the epoch's first batch again, one batch off.

    changes: more (old, new) replacements in the script.
    """
    (folder / ".ci").mkdir()
    shutil.copy(os.path.join(ROOT, ".ci", "versions"), str(folder / ".ci" / "versions"))
    restore = "        saver.restore(sess, state.model_checkpoint_path)\n"
    again = "        sess.run(init_op, feed_dict=position_feed(feed_dict, 0))\n"
    script = read(SCRIPT)
    for old, new in ((restore, restore + again),) + changes:
        assert script.count(old) == 1, old
        script = script.replace(old, new)
    (folder / "save_and_restore.py").write_text(script)
    shutil.copy(os.path.join(ROOT, "README.md"), str(folder / "README.md"))  # Its transcript.
    return folder


def test_ci_versions_checks_the_resume_with_the_full_run_where_the_numbers_are_not_the_readmes(
    tmp_path,
):
    # Another seed: other initial weights and data, as TensorFlow 1.x and 2.0
    # compute other numbers than the README's. The README cannot tell a
    # broken resume from those; the uninterrupted run, made next, does.
    project = copy_with_a_broken_resume(tmp_path, ("\nSEED = 0\n", "\nSEED = 1\n"))
    result = installed_versions(str(project / ".ci" / "versions"))
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[1:3] == [
        (
            "ok    stop at step 3, then resume: this TensorFlow's own numbers, not the README's: "
            "the full run checks the resume"
        ),
        "FAIL  full run: the resumed run printed other lines than the uninterrupted run",
    ]
    # diff's lines follow: what the resumed run printed, and what it should have.
    assert any(line.startswith("      | < Epoch 1, batch 1 | Sample value") for line in lines)
    assert any(line.startswith("      | > Epoch 1, batch 1 | Sample value") for line in lines)
    assert "PASS" not in result.stdout


@pytest.mark.heavy(7)
def test_ci_versions_fails_at_the_resume_step_when_the_resumed_run_reads_other_batches(tmp_path):
    # As the TF 1.8 job runs it in its image.
    result = installed_versions(str(copy_with_a_broken_resume(tmp_path) / ".ci" / "versions"))
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith("TensorFlow 2.21.0 (Python 3.")
    # The first step fails: the full run is never made.
    assert lines[1] == (
        "FAIL  stop at step 3, then resume: the resumed run printed other lines than the README's"
    )
    # The lines that differ follow, and nothing is checked after the failure.
    assert lines[2].startswith("      | README: Epoch 1, batch 1 | Sample value"), lines
    assert lines[3].startswith("      | run:    Epoch 1, batch 1 | Sample value"), lines
    assert "PASS" not in result.stdout and "full run" not in result.stdout
    # It worked in a folder of its own, and left nothing behind.
    assert sorted(os.listdir(str(tmp_path))) == [".ci", "README.md", "save_and_restore.py"]


@pytest.mark.heavy(28)
def test_ci_versions_passes_here_and_prints_what_the_versions_page_shows(tmp_path):
    (block,) = code_blocks("Checking a row yourself", "text")
    command, shown = block.split("\n", 1)
    assert command == "$ .ci/versions tensorflow==2.15.1"
    # The same command list, with the TensorFlow installed here instead of 2.15.1.
    result = installed_versions(os.path.join(ROOT, ".ci", "versions"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.listdir(str(tmp_path)) == []  # It works in a folder of its own.
    assert_as_the_page_shows(shown, result.stdout)


def assert_as_the_page_shows(shown, printed):
    """The page's transcript of .ci/versions, as this TensorFlow and this CPU print it.

    The README's numbers may come "within" its tolerance rather than "to the
    digit", as the page says, on a CPU that computes the last digits otherwise.
    """
    versions = printed.splitlines()[0]
    assert versions.startswith("TensorFlow 2.21.0 (Python 3.")
    readme = r"(the README's (?:numbers|last step and final inference)), within (\S+?)(?=;|$)"
    offs = [float(off) for _, off in re.findall(readme, printed, re.MULTILINE)]
    assert all(off <= 1e-5 for off in offs), offs
    printed = re.sub(readme, r"\1, to the digit", printed, flags=re.MULTILINE)
    assert printed == shown.replace("TensorFlow 2.15.1 (Python 3.11.7)", versions)


def test_the_page_shows_what_ci_versions_prints_on_any_cpu():
    (block,) = code_blocks("Checking a row yourself", "text")
    shown = block.split("\n", 1)[1]
    here = shown.replace("TensorFlow 2.15.1 (Python 3.11.7)", "TensorFlow 2.21.0 (Python 3.11.7)")
    assert_as_the_page_shows(shown, here)
    # A CPU 3e-07 off: the same lines, but within 3e-07 where they compare with the README.
    first, second = here.splitlines()[1:3]
    other = here.replace(first, first.replace(", to the digit", ", within 3e-07"))
    other = other.replace(second, second.replace("numbers, to the digit", "numbers, within 3e-07"))
    assert other != here
    assert_as_the_page_shows(shown, other)
    # Beyond the README's tolerance, or off where runs are compared with each other: a failure.
    for wrong in (
        other.replace("within 3e-07", "within 2e-05"),
        here.replace("the resumed run's, to the digit", "the resumed run's, within 3e-07"),
    ):
        try:
            assert_as_the_page_shows(shown, wrong)
        except AssertionError:
            continue
        raise AssertionError("passed: " + wrong)
