"""The command line, ``python -m reference COMMAND`` (also ``dsref``): argument parsing and
printing only; nothing in the package imports it.

``build_parser()`` returns the complete parser (every command and flag: the documentation's
command reference is generated from it); ``main(argv)`` runs one command and returns its exit
status.  The commands are registered in ``reference.cli._registry``."""
from reference.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
