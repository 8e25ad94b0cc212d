"""The commands of `python -m reference`, one module each where a command has grown its own
helpers.  Each module has `register(sub)`, which adds its parser to the argparse
sub-parsers and sets `func` to the function that runs it (returning the exit status);
`reference.cli` lists them in `cli.COMMAND_MODULES`.  Libraries never import these."""
