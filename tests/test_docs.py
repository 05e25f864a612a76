"""The documentation site: every page in the nav, every command documented, every code block
marked and the runnable ones run.

Code blocks are marked by the comment line before them: ``<!-- docs: mini -->`` (runs as
written with the bundled mini model: executed here, in order, one folder per page),
``<!-- docs: official -->`` (needs the official weights or the user's own files),
``<!-- docs: setup -->`` (the install / test / build commands, which CI's ``.ci/run`` runs);
the FAQ keeps its own ``<!-- faq: ... -->`` marks (tests/test_faq.py). Tutorials are executed
when CI builds the site (``mkdocs build --strict``).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from enformer.cli.main import COMMANDS, main

from .test_faq import expected_prints

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARK = r"(?:<!-- (?:docs|faq): (?P<mark>\w+) -->\n)?"
FENCE = re.compile(MARK + r"```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)\n```", re.S)
# In a jupytext tutorial, markdown cells are comment lines: "# ```bash" ... "# ```".
TUTORIAL_FENCE = re.compile(
    r"(?:# <!-- docs: (?P<mark>\w+) -->\n)?# ```(?P<lang>\w*)\n(?P<body>(?:#.*\n)*?)# ```", re.M
)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def tutorials() -> list[Path]:
    return sorted((DOCS / "tutorials").glob("*.py"))


def nav_files() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)

    def walk(item):
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for v in item.values():
                yield from walk(v)
        else:
            for v in item:
                yield from walk(v)

    return list(walk(config["nav"]))


def test_the_nav_lists_every_page_once():
    listed = nav_files()
    assert len(listed) == len(set(listed))
    on_disk = {str(p.relative_to(DOCS)) for p in [*pages(), *tutorials()]}
    assert set(listed) == on_disk


def test_every_command_has_a_page_with_its_generated_help():
    listed = set(nav_files())
    for name in COMMANDS:
        page = DOCS / "commands" / f"{name}.md"
        assert f"commands/{name}.md" in listed
        assert f"<!-- enformer-help: {name} -->" in page.read_text(), name


def test_the_help_hook_renders_each_command():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hook", DOCS / "hooks" / "enformer_docs.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = hook.on_page_markdown("<!-- enformer-help: score -->", None, None, None)
    assert text.startswith("```text\nusage: enformer score") and "--stats" in text
    with pytest.raises(ValueError, match="no enformer command named 'nope'"):
        hook.on_page_markdown("<!-- enformer-help: nope -->", None, None, None)


def test_every_code_block_is_marked():
    unmarked = []
    for page in pages():
        for m in FENCE.finditer(page.read_text()):
            if m["mark"] not in ("mini", "official", "setup"):
                unmarked.append(f"{page.relative_to(DOCS)}: {m['body'][:50]!r}")
    for tutorial in tutorials():
        for m in TUTORIAL_FENCE.finditer(tutorial.read_text()):
            if m["mark"] != "official":  # a tutorial's own code cells are executed
                unmarked.append(f"{tutorial.relative_to(DOCS)}: {m['body'][:50]!r}")
    assert not unmarked, unmarked


def _normalised(command: str) -> str:
    """A command without ``python -m`` and pip's ``-q``, for comparing with .ci/run."""
    words = [w for w in shlex.split(command.replace("python -m ", "")) if w != "-q"]
    return " ".join(words)


def test_setup_blocks_are_what_ci_runs():
    ci = "\n".join(_normalised(line) for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.lstrip().startswith("#"))
    found = 0
    for page in pages():
        for m in FENCE.finditer(page.read_text()):
            if m["mark"] != "setup":
                continue
            for line in m["body"].splitlines():
                for command in line.split("#")[0].split("&&"):
                    if command.strip():
                        found += 1
                        assert _normalised(command) in ci, f"{page.name}: {command!r} not in CI"
    assert found >= 5


def test_tutorials_say_what_changes_with_the_official_weights():
    assert len(tutorials()) >= 5
    for tutorial in tutorials():
        text = tutorial.read_text()
        assert text.startswith("# %% [markdown]\n# # "), tutorial.name
        assert "official weights" in text.lower(), tutorial.name


def _mini_blocks(page: Path) -> list[re.Match]:
    return [m for m in FENCE.finditer(page.read_text()) if m["mark"] == "mini"]


RUNNABLE = [p for p in pages() if p.name != "faq.md" and _mini_blocks(p)]


def test_some_pages_have_runnable_blocks():
    assert {p.name for p in RUNNABLE} >= {"geometry.md", "tracks.md"}


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(DOCS)))
def test_mini_blocks_run_and_print_what_they_say(page, tmp_path, monkeypatch):
    blocks = _mini_blocks(page)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for m in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if m["lang"] == "python":
                exec(compile(m["body"], str(page), "exec"), namespace)  # noqa: S102
            else:
                for line in m["body"].splitlines():
                    argv = shlex.split(line)
                    if ">" in argv:  # a redirect of stdout to a file
                        argv, target = argv[: argv.index(">")], argv[argv.index(">") + 1]
                        inner = io.StringIO()
                        with contextlib.redirect_stdout(inner):
                            assert main(argv[1:]) == 0, line
                        Path(target).write_text(inner.getvalue())
                    else:
                        assert argv[0] == "enformer" and main(argv[1:]) == 0, line
        printed = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
        if m["lang"] == "python":
            assert printed == expected_prints(m["body"]), page.name
