"""Numerical verification of the paper's claims: run `python -m theory_checks.<name> [--quick]`."""
