"""The command line, ``python -m reference COMMAND`` (also ``dsref``): the parser of the
registered commands (reference.cli._registry.COMMANDS), and main, which runs one of them and
turns its errors and a reader that went away into exit statuses."""
from __future__ import annotations

import argparse
import os
import sys

from reference.cli._registry import COMMANDS
from reference.exceptions import TooLarge


def build_parser() -> argparse.ArgumentParser:
    """Build the complete command-line parser.

    Returns
    -------
    argparse.ArgumentParser
        Every registered command (``COMMANDS``, in that order) with its arguments; the
        parsed arguments carry the command's ``run`` as ``func``.  The docs' command-line
        reference is generated from it.
    """
    parser = argparse.ArgumentParser(prog="python -m reference", description=(
        "Reference implementation of deep spline networks with a controlled Lipschitz "
        "constant (Aziznejad et al. 2020)."))
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


SIGPIPE_STATUS = 128 + 13      # 141: what a shell reports for a writer killed by SIGPIPE (13)


class ReaderGone:
    """sys.stdout or sys.stderr, surviving its reader going away (`... | head`).

    On the first BrokenPipeError its file descriptor is pointed at /dev/null (os.dup2), so
    the command runs on to its own exit status, its later output and Python's final flush go
    nowhere quietly (no 'Exception ignored ... BrokenPipeError' at exit), and `broken` is
    set.  Everything else is the wrapped stream's."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._discard()

    def _discard(self):
        self.broken = True
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):       # no descriptor: replace it
            self.stream = open(os.devnull, "w")
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    """Run one command (``python -m reference COMMAND ...``).

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 done, 1 a check failed, 2 a usage or input error with a one-line
        message, 3 an answer not certified (a claim undecided, a solve stopped at its time
        limit or not certified optimal), 130 interrupted, 141 done but part of the output
        lost (see Notes).

    Notes
    -----
    When the reader of stdout or stderr goes away (`... | head`) the command still runs to
    its end (files are written as asked) with the rest of its output discarded, and keeps
    its own status if that is not 0, so that no failure (1, 2, 3, 130) ever reads as
    success under `set -o pipefail`; a command that succeeded exits with 141 (128 + SIGPIPE,
    what a shell reports for any writer whose reader left), because part of what it printed
    was lost: 0 means done and every line delivered.
    """
    streams = sys.stdout, sys.stderr             # None when closed (`>&-`): print skips it
    sys.stdout, sys.stderr = guarded = [s if s is None else ReaderGone(s) for s in streams]
    try:
        status = run_command(argv)
        for stream in guarded:
            if stream is not None:
                stream.flush()                   # a break at the last write is seen here
    finally:
        sys.stdout, sys.stderr = streams
    broken = any(s is not None and s.broken for s in guarded)
    return SIGPIPE_STATUS if status == 0 and broken else status


def run_command(argv) -> int:
    """Parse argv and run its command: main's status, without the broken-pipe rule."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:                # argparse printed the usage error (or --help)
        assert isinstance(exc.code, int)     # argparse exits with an int status
        return exc.code
    try:
        return args.func(args)
    except (ValueError, ImportError, RuntimeError, OSError) as exc:
        # user errors (bad values, files, failed solves); anything else is a bug: traceback
        message = str(exc)
        if isinstance(exc, TooLarge):            # the keyword's command-line flag
            message += f" (on the command line: --{exc.override.replace('_', '-')})"
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files being written were left as they were", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
