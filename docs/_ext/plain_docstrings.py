"""Read the package's docstrings as what they are: plain text with reStructuredText markup.

The docstrings write absolute values and norms as ``|x|`` and ``||W||`` and name keyword
arguments with a trailing underscore (``range_``), as the README and the printed output do.
In reStructuredText ``|x|`` is a substitution reference and ``range_`` a hyperlink
reference, both of which fail the ``-W`` build. :func:`escape_plain_text` escapes these two
characters in running text only: never inside inline literals and roles (backticks), literal
blocks (after ``::``), directive bodies (``.. math::``), doctest blocks or tables, so every
other piece of markup keeps its meaning.
"""
from __future__ import annotations

import re

_LITERAL = re.compile(r"(:[\w:+-]+:`[^`]*`|``.+?``|`[^`]*`_{0,2})")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=[\s,.;:)\]]|$)")
_TABLE_LINE = re.compile(r"^\s*(\+[-=+]+\+|\|.*\|)\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_text(segment: str) -> str:
    segment = segment.replace("|", r"\|")
    return _TRAILING_UNDERSCORE.sub(r"\_", segment)


def escape_line(line: str) -> str:
    """Escape ``|`` and a word's trailing ``_`` outside the backtick spans of one line."""
    parts = _LITERAL.split(line)
    return "".join(part if i % 2 else _escape_text(part) for i, part in enumerate(parts))


def escape_plain_text(lines: list) -> list:
    """The docstring's lines with running text escaped (see the module docstring)."""
    out, block_indent, in_doctest = [], None, False
    for line in lines:
        stripped = line.strip()
        if block_indent is not None:
            if not stripped or _indent(line) > block_indent:
                out.append(line)
                continue
            block_indent = None
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest:
            out.append(line)
            if not stripped:
                in_doctest = False
            continue
        if _TABLE_LINE.match(line):
            out.append(line)
            continue
        if _DIRECTIVE.match(line):
            block_indent = _indent(line)
            out.append(line)
            continue
        escaped = escape_line(line)
        if stripped.endswith("::"):
            block_indent = _indent(line)
        out.append(escaped)
    return out


def process_docstring(app, what, name, obj, options, lines) -> None:
    lines[:] = escape_plain_text(lines)


def setup(app):
    # after numpydoc (priority 500), on the reStructuredText it writes
    app.connect("autodoc-process-docstring", process_docstring, priority=600)
    return {"parallel_read_safe": True}
