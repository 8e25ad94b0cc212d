"""Every exception class of the package, in one hierarchy, so that callers catch what they
mean to catch.

All derive from `DeepSplineError`; each also keeps its builtin base, so code that catches
``ValueError`` (a bad input, a file, a size guard) or ``RuntimeError`` (a solver that did
not certify an answer) still catches it::

    DeepSplineError(Exception)
    +-- SolveFailed(RuntimeError)           a solver ran and gave no certified answer
    |   +-- SolveNotCertified               ... but carries the best feasible point
    |   +-- InaccurateSolution              ... whose objective the re-evaluation refutes
    |   +-- MilpNotOptimal                  ... HiGHS failing with and without presolve
    +-- OverflowResult(ValueError)          finite inputs, a result outside float64
    +-- TooLarge(ValueError)                refused by a size guard before starting
    +-- NotApplicable(ValueError)           a method that does not apply to this model or p
    +-- FileError(ValueError)               a user's file that cannot be read or written
    +-- ModelFileError(ValueError)          a model file that does not follow the format
    +-- SuiteError(ValueError)              a directory that is not a conformance suite

The ladder (`reference.lipschitz.ladder`) turns SolveFailed, and only it among
RuntimeErrors, into value None with the message as the reason.  A control-flow exception
private to one module (the interior-point solver's ``_Stop``) is not an error of the
package and stays there.
"""
from __future__ import annotations

__all__ = [
    "DeepSplineError",
    "FileError",
    "InaccurateSolution",
    "MilpNotOptimal",
    "ModelFileError",
    "NotApplicable",
    "NumpyRepr",
    "OverflowResult",
    "SolveFailed",
    "SolveNotCertified",
    "SuiteError",
    "TooLarge",
]


class DeepSplineError(Exception):
    """Base class of every error the package raises on purpose.

    Catch it to handle any of them; each subclass also derives from the builtin that fits it
    (``ValueError`` or ``RuntimeError``), which is what to catch for one kind.
    """


class SolveFailed(DeepSplineError, RuntimeError):
    """A solver, or a certification step, reported failure: no value is given.

    Raised when HiGHS stops with an error, when no LipSDP attempt certifies a bound, when no
    linear region passes its check, or when a coefficient solve ends with a status other
    than optimal.  The message names the method and what each attempt ended with.  A
    ``RuntimeError``, so code that caught ``RuntimeError`` still catches it.
    """


class SolveNotCertified(SolveFailed):
    """A coefficient solve that ended without a certified optimum.

    Raised by the coefficient solves (`reference.convex`) when the status is
    ``"time_limit"`` or ``"not_optimal"``; the ``solve`` command writes the point it carries
    and exits 3.

    Parameters
    ----------
    message : str
        What the solve ended with.
    model : Network
        The best feasible point known.
    certificate : dict
        Its certificate (objective, lower_bound where available, status).

    Attributes
    ----------
    model : Network
        As given.
    certificate : dict
        As given.
    """

    def __init__(self, message: str, model, certificate: dict):
        super().__init__(message)
        self.model, self.certificate = model, certificate


class InaccurateSolution(SolveFailed):
    """A solver's point whose objective, re-evaluated in NumPy, disagrees with the solver's
    beyond tolerance.

    Raised inside the coefficient solve; the point is still feasible, and the certification
    step compares it with the others.

    Parameters
    ----------
    message : str
        The disagreement, with the two objectives and the tolerance.
    pieces : list
        Per neuron (grid, values) in internal units: the feasible point.

    Attributes
    ----------
    pieces : list
        As given.
    """

    def __init__(self, message: str, pieces: list):
        super().__init__(message)
        self.pieces = pieces


class MilpNotOptimal(SolveFailed):
    """HiGHS failed on the exact MILP, other than by its time limit, with and without
    presolve: no value is reported.

    Raised by `reference.lipschitz.exact_milp`; the message gives each attempt's status.
    """


class OverflowResult(DeepSplineError, ValueError):
    """A computation whose inputs are finite but whose result leaves the float64 range.

    Raised instead of returning inf or 0 (a bound, a forward pass, a training epoch, a
    product of norms); the message names the quantity and, where known, its log10.
    """


class TooLarge(DeepSplineError, ValueError):
    """A method refused by its size guard before starting.

    Raised by `reference._limits.guard` when a method's cost estimate, computed from the
    shapes alone, is over its limit; the message gives the estimate, the limit and the
    keyword argument that raises it.

    Parameters
    ----------
    what : str
        The quantity estimated (e.g. "model: the MILP's binaries").
    estimate : float
        Its estimate.
    limit : float
        The limit it is over.
    override : str
        The keyword argument that raises the limit.

    Attributes
    ----------
    estimate, limit : float
        As given.
    override : str
        As given.
    """

    def __init__(self, what: str, estimate: float, limit: float, override: str):
        self.estimate, self.limit, self.override = float(estimate), float(limit), override
        super().__init__(f"{what} {estimate:.4g} is over the size guard {override}="
                         f"{limit:.4g}; pass a larger {override} to run it anyway")


class NotApplicable(DeepSplineError, ValueError):
    """A method that does not apply to this model or p.

    Raised by the exact Lipschitz methods (the MILP for p = 2, the 2-D regions for a layer
    that is not piecewise linear, a box the first layer's weights cannot be scaled to) and
    by the ladder (LipSDP for p other than 2, an exact l2 value for more than two inputs);
    the message says why.
    """


class FileError(DeepSplineError, ValueError):
    """A file given by the user that cannot be read or written as asked.

    Raised by `reference.io` (and the readers built on it) for a missing, damaged or
    foreign file, or an output path that cannot be written; the message names the
    argument it came from and what the file is.
    """


class ModelFileError(DeepSplineError, ValueError):
    """A model file that does not follow the format.

    Raised by `reference.io.load_model` and `reference.io.save_model`; the message names
    the layer and the entry at fault.
    """


class SuiteError(DeepSplineError, ValueError):
    """A directory that is not a conformance suite this version can read.

    Raised by `reference.conformance.load_suite` and the grading when the manifest, a case
    or its files do not match what this version exports; the message names the case.
    """


class NumpyRepr(DeepSplineError, AssertionError):
    """Printed text that holds NumPy's repr of a number (``np.float64(0.5)``) instead of it.

    Raised by `reference.testing.assert_numbers_only`, the check the tests run on every
    command's output.
    """
