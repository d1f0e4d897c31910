"""The README and its pages as one path: every command they give, in order, in one fresh folder.

A reader goes through the pages in the README's order (its "Going further"
list), in one clone, running every block as printed; so does this test, and
it compares each transcript with what the command printed (the words, and
the numbers within the README's tolerance). It takes minutes, so it runs only
when asked:

    python3 -m pytest tests/test_pages_in_order.py --in-order -n 0

(`.ci/run --full` runs it after the suite.) A page marks, in an HTML comment
before a block, what this test cannot do as printed, and why:

    <!-- in order: skip: REASON -->       the whole block (Docker, another
                                          TensorFlow, the install, the tests)
    <!-- in order: skip N: REASON -->     its Nth command only (a Ctrl-C at a
                                          moment, a kill -9 from another terminal)
    <!-- in order: among -->              the lines shown are among those printed
                                          (a traceback's last line, say)
    <!-- in order: any order -->          lines of several processes, in any order
    <!-- in order: words -->              the same words, numbers of their own
                                          (asynchronous training: another order)

A path of the folder it runs in is the page's `/home/you/work`, and a port of
this machine any port.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import (
    EXAMPLE_LINK,
    NUMBER,
    README,
    ROOT,
    doc_section,
    finish,
    read,
    script_stderr,
    user_environment,
)

MARKER = re.compile(r"<!-- in order: (skip(?: (\d+))?: (.+?)|among|any order|words) -->")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# What changes from run to run and is no one's business: ports a cluster picked.
VOLATILE = re.compile(r"127\.0\.0\.1:\d+")
HOME = "/home/you/work"  # The folder a page's reader runs in.
BOUND = 120  # The longest command here (a cluster's run) takes 10 s; most, 2 to 5.
LIBRARIES = {"tf1_cells.py"}  # Imported by the others, never run.


def pages():
    """The README, then the pages in the order its "Going further" list links them."""
    links = re.findall(r"\]\(docs/([\w-]+\.md)", doc_section("Going further"))
    return [README] + [os.path.join(ROOT, "docs", name) for name in dict.fromkeys(links)]


def commands(code, language):
    """The commands of a block, with the output each shows (None for a sh block)."""
    if language == "sh":
        lines = code.replace("\\\n", "").splitlines()
        return [(line, None) for line in lines if line.strip() and not line.startswith("#")]
    found = []
    for line in code.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return found


def steps():
    """Every command of every page, in order: (page, command, shown lines, how, why skipped).

    A program a page prints whole is run where it is printed, unless the page
    gives the command that runs it (with what it prints).
    """
    for page in pages():
        text = read(page)
        for block in BLOCK.finditer(text):
            language, code = block.groups()
            marks = markers(text[: block.start()])
            skips = {m.group(2): m.group(3) for m in marks if m.group(3)}
            hows = [m.group(1) for m in marks if not m.group(3)]
            if language == "python" and code.startswith(("import ", "from ", '"""')):
                name = EXAMPLE_LINK.findall(text[: block.start()])[-1]
                command = f"python3 examples/{name}"
                if f"$ {command}\n" not in text and name not in LIBRARIES:
                    yield os.path.basename(page), command, None, set(), None
            if language not in ("sh", "text"):
                continue
            for number, (command, shown) in enumerate(commands(code, language), 1):
                skipped = skips.get(None) or skips.get(str(number))
                yield os.path.basename(page), command, shown, set(hows), skipped


def markers(before):
    """The in-order markers of a block: the comment lines right before it."""
    found = []
    for line in reversed(before.rstrip("\n").split("\n")):
        marker = MARKER.fullmatch(line.strip())
        if not marker:
            break
        found.append(marker)
    return found


def same_line(want, got, words_only=False):
    """The same words, and the same numbers within the README's tolerance (1e-5)."""
    words = ["".join(NUMBER.sub("#", line).split()) for line in (want, got)]
    if words[0] != words[1]:
        return False
    numbers = [[float(x) for x in NUMBER.findall(line)] for line in (want, got)]
    return words_only or np.allclose(numbers[0], numbers[1], rtol=0, atol=1e-5)


def differences(shown, printed, hows, folder):
    """Why what a command printed is not what its transcript shows, or None."""
    printed = [VOLATILE.sub("HOST", line.replace(folder, HOME)) for line in printed]
    shown = [VOLATILE.sub("HOST", line) for line in shown]
    words_only = "words" in hows
    if "among" in hows:
        missing = [x for x in shown if not any(same_line(x, p, words_only) for p in printed)]
        return f"not printed: {missing[0]!r}" if missing else None
    if "any order" in hows:
        shown, printed = (
            sorted(lines, key=lambda x: NUMBER.sub("#", x)) for lines in (shown, printed)
        )
    if len(shown) != len(printed):
        return f"{len(printed)} lines printed, {len(shown)} shown"
    for want, got in zip(shown, printed):
        if not same_line(want, got, words_only):
            return f"shown {want!r}, printed {got!r}"
    return None


def run(command, folder, env):
    """Runs a command as a shell in folder would: (status, [stdout's lines, and those with
    stderr's after them], the folder it ends in). TensorFlow's own start-up notes are left out."""
    with tempfile.NamedTemporaryFile("r") as where:
        script = 'cd "$1" && eval "$2"; status=$?; pwd > "$3"; exit $status'
        process = subprocess.Popen(
            ["bash", "-c", script, "bash", folder, command, where.name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Its group: what the command starts.
        )
        stdout, stderr = finish(process, BOUND, f"`{command}`")
        folder = where.read().strip() or folder
    out = stdout.splitlines()
    return process.returncode, [out, out + script_stderr(stderr)], folder


def tracked():
    """The project's files, as git knows them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    return [name for name in listed if name]


def clone(folder):
    """The project's files, as a clone of it has them, in folder."""
    for name in tracked():
        target = os.path.join(folder, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), target)


def test_every_page_runs_in_order_from_one_clone(request, tmp_path):
    if not request.config.getoption("--in-order"):
        pytest.skip("minutes long: run with --in-order")
    folder = str(tmp_path / "save_and_restore")
    clone(folder)
    # The README's first block installed this environment: its python3 first on the PATH.
    bin_folder = os.path.dirname(sys.executable)
    env = user_environment(PATH=bin_folder + os.pathsep + os.environ["PATH"])
    report, failed, skipped = [], [], []
    cwd = folder
    for page, command, shown, how, why in steps():
        if why:
            skipped.append(f"{page}: {command[:70]}: {why}")
            continue
        status, printed, cwd = run(command, cwd, env)
        if shown is None:  # A sh block: it must work; what it prints is not shown.
            problem = None if status == 0 else f"exit status {status}: {printed[1][-3:]}"
        else:  # As shown on stdout; or on the terminal, stderr's lines after.
            problems = [differences(shown, lines, how, folder) for lines in printed]
            problem = None if None in problems else problems[1]
        line = f"{page}: $ {command[:90]}"
        report.append(line + (f"\n    {problem}" if problem else ""))
        if problem:
            failed.append(line + f"\n    {problem}")
    # What the pages made is all in .gitignore: a reader's `git status` stays clean.
    made = sorted(set(os.listdir(folder)) - {name.split("/")[0] for name in tracked()})
    made = [name + "/" * os.path.isdir(os.path.join(folder, name)) for name in made]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--", *made],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if set(made) - set(ignored):
        failed.append(f"made and not in .gitignore: {sorted(set(made) - set(ignored))}")
    summary = f"{len(report)} commands run, {len(failed)} not as shown, {len(skipped)} skipped"
    print("\n".join([summary, *report, "skipped:", *skipped]))
    assert not failed, summary + "\n" + "\n".join(failed)
