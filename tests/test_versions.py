""".ci/versions: the command list behind each row of docs/versions.md, in one place."""

import os
import shutil
import subprocess
import sys

from conftest import ROOT, SCRIPT, code_blocks, read


def installed_versions(command, cwd=None):
    """Runs .ci/versions --installed (command: its path) with the TensorFlow of this Python."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    return subprocess.run(
        [command, "--installed"],
        cwd=None if cwd is None else str(cwd),
        env=dict(os.environ, PATH=path),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def test_ci_versions_fails_at_the_resume_step_when_the_resumed_run_reads_other_batches(tmp_path):
    # A copy of the project whose resumed run initializes its iterator again
    # after restoring it: it reads the epoch's first batch again, one batch off.
    (tmp_path / ".ci").mkdir()
    shutil.copy(os.path.join(ROOT, ".ci", "versions"), str(tmp_path / ".ci" / "versions"))
    restore = "        saver.restore(sess, state.model_checkpoint_path)\n"
    script = read(SCRIPT)
    assert script.count(restore) == 1
    again = "        sess.run(init_op, feed_dict=position_feed(feed_dict, 0))\n"
    (tmp_path / "save_and_restore.py").write_text(script.replace(restore, restore + again))
    # As the TF 1.8 job runs it in its image.
    result = installed_versions(str(tmp_path / ".ci" / "versions"))
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith("TensorFlow 2.21.0 (Python 3.")
    assert [line.split(":")[0] for line in lines[1:3]] == [
        "ok    full run",
        "FAIL  stop at step 3, then resume",
    ]
    assert lines[2].endswith("the resumed run printed other lines than the uninterrupted run")
    # The lines that differ follow, and nothing is checked after the failure.
    assert lines[3].startswith("      | ") and "Epoch 1, batch 1 | Sample value" in result.stdout
    assert "PASS" not in result.stdout and "--restore-only" not in result.stdout
    # It worked in a folder of its own, and left nothing behind.
    assert sorted(os.listdir(str(tmp_path))) == [".ci", "save_and_restore.py"]


def test_ci_versions_passes_here_and_prints_what_the_versions_page_shows(tmp_path):
    (block,) = code_blocks("Checking a row yourself", "text")
    command, shown = block.split("\n", 1)
    assert command == "$ .ci/versions tensorflow==2.15.1"
    # The same command list, with the TensorFlow installed here instead of 2.15.1.
    result = installed_versions(os.path.join(ROOT, ".ci", "versions"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    versions = result.stdout.splitlines()[0]
    assert versions.startswith("TensorFlow 2.21.0 (Python 3.")
    assert result.stdout == shown.replace("TensorFlow 2.15.1 (Python 3.11.7)", versions)
    assert os.listdir(str(tmp_path)) == []  # It works in a folder of its own.
