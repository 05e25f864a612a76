"""docs/faq.md: every code block is marked; the mini-model blocks run and print what they say."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from enformer.cli.main import main

FAQ = Path(__file__).resolve().parents[1] / "docs" / "faq.md"
FENCE = re.compile(r"(?:<!-- faq: (?P<mark>\w+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.S)


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m["mark"], m["lang"], m["body"]) for m in FENCE.finditer(FAQ.read_text())]


def expected_prints(code: str) -> list[str]:
    """The ``# comment`` closing each ``print(...)`` statement: what it must print."""
    out, in_print = [], False
    for line in code.splitlines():
        in_print = in_print or line.lstrip().startswith("print(")
        if in_print and "  # " in line:
            out.append(line.split("  # ", 1)[1].strip())
            in_print = False
    return out


def test_every_code_block_is_marked_mini_or_official():
    found = blocks()
    assert len(found) >= 10
    assert {mark for mark, _, _ in found} == {"mini", "official"}, [b[2][:40] for b in found]
    assert sum(mark == "mini" for mark, _, _ in found) >= 7


def test_mini_blocks_run_as_written_and_print_their_comments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for mark, lang, body in blocks():
        if mark != "mini":
            continue
        if lang == "python":
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(body, str(FAQ), "exec"), namespace)  # noqa: S102 - our own docs
            assert buffer.getvalue().splitlines() == expected_prints(body), body
        else:
            assert lang == "bash", body
            for command in body.replace("\\\n", " ").splitlines():
                argv = shlex.split(command)
                assert argv[0] == "enformer", command
                assert main(argv[1:]) == 0, command
                capsys.readouterr()
    assert (tmp_path / "emb" / "embeddings.npz").is_file()


@pytest.mark.parametrize(
    "text", ["196,608", "4828", "softplus", "inference_mode", "--freeze-batchnorm", "40,960"]
)
def test_faq_answers_the_recurring_questions(text):
    assert text in FAQ.read_text()
