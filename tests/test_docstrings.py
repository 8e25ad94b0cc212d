"""numpydoc validation of the public API: every name in a subpackage's ``__all__`` (and every
public method of a public class) has a numpydoc docstring with a summary, its parameters
documented (each with a description), and a Returns section with descriptions when it
returns something."""
import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

SUBPACKAGES = ("nn", "data", "training", "convex", "lipschitz", "oracle", "conformance", "io",
               "exceptions", "testing", "cli")

# The checks enforced (numpydoc's codes): no docstring (GL08), no summary (SS01), a parameter
# not documented (PR01) or documented but not a parameter (PR02), a parameter with no
# description (PR07), no Returns section where the code returns a value (RT01), a return
# value with no description (RT03).
CHECKS = frozenset({"GL08", "SS01", "PR01", "PR02", "PR07", "RT01", "RT03"})


def public_names(sub):
    """The dotted names to validate in ``reference.<sub>``: its ``__all__`` callables and the
    public methods and properties their classes define themselves."""
    module = importlib.import_module(f"reference.{sub}")
    names = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj):
            continue
        names.append(f"reference.{sub}.{name}")
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_") or not (inspect.isfunction(value)
                                                or isinstance(value, (property, classmethod,
                                                                      staticmethod))):
                    continue
                names.append(f"reference.{sub}.{name}.{attr}")
    return names


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_public_docstrings_follow_numpydoc(sub):
    problems = []
    for dotted in public_names(sub):
        result = numpydoc_validate.validate(dotted)
        problems += [f"{dotted}: {code} {message}" for code, message in result["errors"]
                     if code in CHECKS]
    assert not problems, f"{len(problems)} numpydoc findings:\n" + "\n".join(problems)
