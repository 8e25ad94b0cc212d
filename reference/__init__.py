"""Reference implementation of deep neural networks with trainable linear-spline
activations and a controlled Lipschitz constant (Aziznejad, Gupta, Campos, Unser,
IEEE Trans. Signal Processing 2020, arXiv:2001.06263).  NumPy, float64 throughout.

The subpackages, each with its public names in ``__all__``:

- :mod:`reference.nn`: splines, activations (registry), network, losses, regularisers;
- :mod:`reference.data`: generated data sets, digits, MNIST;
- :mod:`reference.training`: optimisers and the loop, sparsification, experiments, sweeps;
- :mod:`reference.convex`: the coefficient problem with the weights fixed;
- :mod:`reference.lipschitz`: bounds, LipSDP, exact values, the ladder, verdicts;
- :mod:`reference.oracle`: reference answers, check, localisation;
- :mod:`reference.conformance`: the conformance suite;
- :mod:`reference.io`: the model file, safe writes, the DeepSplines importer;
- :mod:`reference.exceptions`: every exception class of the package;
- :mod:`reference.testing`: what tests, theory checks and benchmarks share (random
  networks, finite differences, rescaled problems, property-test profiles);
- :mod:`reference.cli`: the command line, ``python -m reference`` (``main``,
  ``build_parser``).

Subpackages are imported on first use (``reference.lipschitz`` loads SciPy and cvxpy only
when it is touched).
"""
import importlib
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("deepspline-reference")
except _metadata.PackageNotFoundError:      # run from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "conformance", "convex", "data", "exceptions", "io", "lipschitz",
           "nn", "oracle", "testing", "training"]

# also reachable on first access, not star-imported: the command line (nothing in the
# package imports it)
_SUBPACKAGES = frozenset(__all__) - {"__version__"} | {"cli"}


def __getattr__(name: str) -> Any:
    """Import a subpackage on first access (``reference.nn`` without ``import reference.nn``)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"reference.{name}")
    raise AttributeError(f"module 'reference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES)
