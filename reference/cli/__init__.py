"""The command line, ``python -m reference COMMAND`` (also ``dsref``): argument parsing and
printing only; nothing in the package imports it."""
from reference.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
