"""The command-line parser as the CLI reference shows it.

``reference.cli.build_parser`` is the parser the program runs; its help texts are plain text
(``|a_k| <= T``), which reStructuredText would read as substitutions. :func:`parser` returns
that same parser with each help text, description and epilog escaped for reStructuredText
(``plain_docstrings.escape_line``); the program's own ``--help`` output is not touched.
"""
from __future__ import annotations

import argparse

from _ext.plain_docstrings import escape_line
from reference.cli import build_parser


def _escape(text):
    if not isinstance(text, str):
        return text
    return "\n".join(escape_line(line) for line in text.split("\n"))


def _escape_parser(parser: argparse.ArgumentParser, seen: set) -> None:
    if id(parser) in seen:
        return
    seen.add(id(parser))
    parser.description = _escape(parser.description)
    parser.epilog = _escape(parser.epilog)
    for action in parser._actions:
        if action.help is not argparse.SUPPRESS:
            action.help = _escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _escape(choice.help)
            for sub in action.choices.values():
                _escape_parser(sub, seen)


def parser() -> argparse.ArgumentParser:
    """``reference.cli.build_parser()`` with its texts escaped for reStructuredText."""
    built = build_parser()
    _escape_parser(built, set())
    return built
