"""MkDocs hooks of this site (``hooks:`` in mkdocs.yml).

* ``<!-- enformer-help: NAME -->`` in a page becomes the ``--help`` text of
  ``enformer NAME``, generated at build time so that it never drifts from the code.
* The tutorials (jupytext scripts under ``docs/tutorials``, executed by mkdocs-jupyter)
  find the shared real-data folder through ``ENFORMER_SHARED`` (default: ``../shared``
  beside the repository).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELP = re.compile(r"<!-- enformer-help: ([a-z]+) -->")


def on_config(config, **kwargs):
    os.environ.setdefault("ENFORMER_SHARED", str(ROOT.parent / "shared"))
    os.environ["COLUMNS"] = "100"  # argparse wraps help at this width
    return config


def _help(name: str) -> str:
    from enformer.cli.main import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name].format_help()
    raise ValueError(f"docs: no enformer command named {name!r}")


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    return HELP.sub(lambda m: "```text\n" + _help(m.group(1)).rstrip() + "\n```", markdown)
