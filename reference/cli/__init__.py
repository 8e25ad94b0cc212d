"""The command line, ``python -m reference COMMAND`` (also ``dsref``): argument parsing and
printing only; nothing in the package imports it."""
from reference.cli._main import main

__all__ = ["main"]
