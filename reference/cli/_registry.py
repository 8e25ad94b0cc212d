"""The commands of ``python -m reference``: the one place a command is registered.

Each command is a module of this package with the same small interface:

- ``NAME``: the command's name on the command line;
- ``HELP``: its line in ``python -m reference --help``;
- ``DESCRIPTION``: the text at the top of ``python -m reference NAME --help`` (None: none);
- ``add_arguments(parser)``: adds its arguments to its own argparse parser;
- ``run(args) -> int``: runs it on the parsed arguments and returns the exit status.

A new command is one such module plus its entry in COMMANDS, in the order the help lists
them."""
from __future__ import annotations

from reference.cli import (
                           _check,
                           _conformance,
                           _evaluate,
                           _import_deepsplines,
                           _info,
                           _lipschitz,
                           _reproduce,
                           _solve,
                           _sweep,
                           _train,
)

COMMANDS = (_train, _info, _check, _evaluate, _lipschitz, _solve, _import_deepsplines,
            _conformance, _reproduce, _sweep)
