"""The file and the docs read as a tutorial: checks of their shape, not of their behaviour."""

import ast
import io
import os
import re
import subprocess
import sys
import tokenize

from conftest import (
    DOCS,
    EXAMPLES,
    README,
    ROOT,
    SCRIPT,
    doc_files,
    doc_section,
    example,
    page_programs,
    read,
)

DIVIDER = "# Below: "


def test_ruff_is_clean():
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff"] + args + ["."],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            text=True,
        )
        assert result.returncode == 0, result.stdout


def test_script_keeps_to_python_3_5_grammar():
    # TF 1.8's own Docker image has Python 3.5: no f-strings, no variable annotations.
    for version in ((3, 5), (3, 6)):
        ast.parse(read(SCRIPT), feature_version=version)
    tree = ast.parse(read(SCRIPT))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)]


def test_script_needs_nothing_newer_than_python_3_5():
    # vermin reads the code for the Python version each construct and library
    # call needs. gc.freeze (3.7) is the one exception: the script checks for it.
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "vermin")]
        + ["--no-tips", "--violations", "-t=3.5-", SCRIPT],
        capture_output=True,
        text=True,
        check=False,
    )
    needs = [line.strip() for line in result.stdout.splitlines() if "requires" in line]
    assert needs == ["'gc.freeze' member requires !2, 3.7"], result.stdout
    assert 'if hasattr(gc, "freeze"):' in read(SCRIPT)


def top_level():
    """The script's top-level definitions: {name: node}, and the divider's line number."""
    lines = read(SCRIPT).splitlines()
    divider = [i + 1 for i, line in enumerate(lines) if line.startswith(DIVIDER)]
    assert len(divider) == 1
    tree = ast.parse(read(SCRIPT))
    defined = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defined[target.id] = node
    return defined, divider[0]


def lesson_and_machinery():
    """The names defined above the divider (the lesson) and below it (the machinery)."""
    defined, divider = top_level()
    lesson = {name: node for name, node in defined.items() if node.lineno < divider}
    machinery = {name: node for name, node in defined.items() if node.lineno > divider}
    return lesson, machinery


def test_the_lesson_comes_first_and_the_machinery_after_the_divider():
    lines = read(SCRIPT).splitlines()
    init = [i for i, line in enumerate(lines) if "make_initializer(" in line and "name=" in line]
    found = [i for i, line in enumerate(lines) if ".get_operation_by_name(DATASET_INIT)" in line]
    assert len(init) == 1 and len(found) == 1
    # The initializer is named on the save side and found on the restore side
    # within a couple of screens.
    assert found[0] - init[0] <= 150, (init, found)
    lesson, machinery = lesson_and_machinery()
    assert "restore" in lesson and "train" in lesson and "save_model" in lesson
    machinery_names = ("UsageError", "check_export_dir", "make_staging", "swap_into_place")
    for name in machinery_names + ("check_export", "StopSignals", "main"):
        assert name in machinery, name
    # Every heading of the file's lesson names a part of the README's "How the script works".
    headings = re.findall(r"^# \d\. (.+)$", read(SCRIPT), re.MULTILINE)
    parts = re.findall(r"^\d\. \*\*(.+?)\*\*", doc_section("How the script works"), re.MULTILINE)
    assert headings == parts and len(parts) >= 7, (headings, parts)


def test_no_lesson_function_uses_a_name_of_the_machinery():
    lesson, machinery = lesson_and_machinery()
    for name, node in lesson.items():
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        assert not used & set(machinery), (name, used & set(machinery))


def calls(node):
    """The dotted names of the calls made in node, e.g. tf.saved_model.loader.load."""
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            parts, func = [], call.func
            while isinstance(func, ast.Attribute):
                parts.insert(0, func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                names.add(".".join([func.id] + parts))
    return names


def test_the_lesson_makes_the_tensorflow_calls_a_reader_copies():
    lesson, _ = lesson_and_machinery()
    assert "tf.saved_model.loader.load" in calls(lesson["restore"])
    assert "graph.get_operation_by_name" in calls(lesson["restore"])
    assert "tf.saved_model.simple_save" in calls(lesson["save_model"])
    assert {"saver.restore", "saver.save"} <= calls(lesson["train"])
    assert "tf.train.Saver" in calls(lesson["make_checkpoint_saver"])
    # The export is written where it is told: no staging in the lesson.
    for name, node in lesson.items():
        if isinstance(node, ast.FunctionDef):
            arguments = [arg.arg for arg in node.args.args]
            assert not [arg for arg in arguments if "stag" in arg], (name, arguments)


def test_above_the_lesson_only_what_must_precede_the_import():
    tree = ast.parse(read(SCRIPT))
    body = tree.body[1:]  # After the docstring.
    # TensorFlow is imported in one place: import_tensorflow(), of the setup block.
    importers = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(inner, ast.Import)
            and {alias.name for alias in inner.names} & {"tensorflow", "tensorflow.compat.v1"}
            for inner in ast.walk(node)
        )
    ]
    assert [node.name for node in importers] == ["import_tensorflow"]
    (index,) = [i for i, node in enumerate(body) if node is importers[0]]
    for node in body[:index]:
        # Imports, the environment TensorFlow reads when it is imported, what
        # ends a run interrupted before anything is written, and `tf = None`.
        if isinstance(node, ast.FunctionDef):
            assert "signal" in ast.dump(node) and "_exit" in ast.dump(node), ast.dump(node)
        elif isinstance(node, ast.If) and "__main__" in ast.dump(node.test):
            assert {type(n) for n in node.body} == {ast.Expr} and "signal" in ast.dump(node)
        elif isinstance(node, ast.Assign):
            assert ast.dump(node.targets[0]) == ast.dump(ast.Name("tf", ast.Store()))
        elif not isinstance(node, (ast.Import, ast.ImportFrom)):
            assert isinstance(node, ast.If) and "environ" in ast.dump(node), ast.dump(node)
    # Then only names (constants) and functions: no call run at import time.
    for node in body[index + 1 :]:
        if isinstance(node, ast.If):  # if __name__ == "__main__":
            assert "__main__" in ast.dump(node.test)
            continue
        assert isinstance(node, (ast.Assign, ast.FunctionDef, ast.ClassDef)), ast.dump(node)
    # main() checks the command line before anything imports TensorFlow.
    main = next(node for node in body if isinstance(node, ast.FunctionDef) and node.name == "main")
    calls = [
        node.value.func.id
        for node in main.body
        if isinstance(node, (ast.Assign, ast.Expr))
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
    ]
    assert calls[:2] == ["parse_args", "setup_tensorflow"], calls


def test_docstrings_stay_in_proportion_to_the_code():
    source = read(SCRIPT)
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.FunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and ast.get_docstring(node) is not None:
            docstrings.update(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    code = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            code.update(set(range(token.start[0], token.end[0] + 1)) - docstrings)
    assert len(docstrings) <= 0.6 * len(code), (len(docstrings), len(code))


def test_the_readme_lands_and_the_pages_go_deep():
    assert len(read(README).splitlines()) <= 300
    pages = [path for path in doc_files() if path != README]
    assert len(pages) >= 4
    for path in pages:
        text = read(path)
        # Long programs are files of examples/, shown by their usage and excerpts.
        assert len(text.splitlines()) <= 450, path
        # Each page stands on its own: a title, and a way back to the README;
        # and it says near its top what it starts from (what earlier pages left).
        assert text.startswith("# ") and "](../README.md)" in text, path
        assert re.search(r"\bstarts\s+from\b", "\n".join(text.splitlines()[:30])), path


def test_every_link_to_a_page_or_section_resolves():
    for path in doc_files():
        folder = os.path.dirname(path)
        for target in re.findall(r"\]\(([^)\s]+)\)", read(path)):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(folder, file)) if file else path
            assert os.path.exists(linked), (path, target)
            if anchor and linked.endswith(".md"):
                headings = re.findall(r"^#+ (.+)$", read(linked), re.MULTILINE)
                slugs = [
                    re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
                    for heading in headings
                ]
                assert anchor in slugs, (path, target)
    # Every page is linked from the README.
    readme = read(README)
    for name in os.listdir(DOCS):
        assert f"](docs/{name})" in readme, name


def test_every_program_a_page_prints_is_its_file_in_examples():
    programs = page_programs()
    assert len([whole for *_, whole in programs if whole]) >= 10
    for page, name, code, whole in programs:
        assert name, (page, code[:60])  # A complete program links its file.
        # Printed whole, byte for byte the file, so that what is copied runs;
        # an excerpt, lines as they are in the file.
        if whole:
            assert code == read(example(name)), (page, name)
        else:
            assert code in read(example(name)), (page, name, code[:200])


def test_every_program_the_pages_name_is_in_examples_and_each_is_named():
    named = set()
    for path in doc_files():
        for name in re.findall(r"examples/((?:\w+/)*\w+\.py)", read(path)):
            assert os.path.isfile(os.path.join(EXAMPLES, name)), (path, name)
            named.add(name)
    # Each program, and each part of one that is a folder (run by its one file).
    programs = {name for name in os.listdir(EXAMPLES) if name.endswith(".py")}
    parts = {
        f"{folder}/{name}"
        for folder in os.listdir(EXAMPLES)
        if os.path.isdir(os.path.join(EXAMPLES, folder)) and not folder.startswith("_")
        for name in os.listdir(os.path.join(EXAMPLES, folder))
        if name.endswith(".py")
    }
    assert named == programs | parts


def test_examples_has_an_index_of_its_programs_with_their_pages():
    index = read(os.path.join(EXAMPLES, "README.md"))
    rows = re.findall(r"^\| \[(\w+\.py)\]\(\1\) \|", index, re.MULTILINE)
    assert sorted(rows) == sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".py"))
    for target in re.findall(r"\]\(([^)\s]+)\)", index):
        file, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(EXAMPLES, file))
        assert os.path.exists(linked), target
        if anchor:
            slugs = [
                re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
                for heading in re.findall(r"^#+ (.+)$", read(linked), re.MULTILINE)
            ]
            assert anchor in slugs, target
    assert "](examples/README.md)" in read(README)


# The programs that run on TensorFlow 1.x too, as their pages say, down to 1.8,
# whose own image has Python 3.5.
TF1_PROGRAMS = ("own_model.py", "make_tf1_lstm.py", "several_workers.py")


def test_the_programs_for_tensorflow_1_keep_to_python_3_5():
    for name in TF1_PROGRAMS:
        code = read(example(name))
        ast.parse(code, feature_version=(3, 5))
        assert not [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.JoinedStr)]
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "vermin")]
        + ["--no-tips", "--violations", "-t=3.5-"]
        + [example(name) for name in TF1_PROGRAMS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert [line for line in result.stdout.splitlines() if "requires" in line] == []
    assert result.returncode == 0, result.stdout
