"""The result type of the package's certified methods: a dict whose keys are also attributes.

Modelled on scipy.optimize.OptimizeResult (the value of `scipy.optimize.milp`): a result is a
plain ``dict`` subclass, so it serialises, pickles, compares and copies as the dict it always
was (``json.dumps(result)`` gives the same text as ``json.dumps(dict(result))``; `plain` and
`jsonable` of reference._format / reference.io turn it into a plain dict), and each key can be
read as an attribute, ``result.value`` being ``result["value"]``.  A subclass documents its
keys in its docstring's Attributes section (numpydoc); the tests compare every key a method
returns against that list, so the docstring is the one place the keys are listed.

A leaf module: it imports nothing from the package.
"""
from __future__ import annotations


class Result(dict):
    """A dict whose keys can also be read and set as attributes.

    ``result.name`` is ``result["name"]``; an unknown name is an AttributeError naming it and
    the keys the result has (not a KeyError, so ``hasattr`` and ``getattr(result, name,
    default)`` work).  Setting or deleting an attribute sets or deletes the key.  Everything
    else is the dict's: iteration order, ``==``, ``json.dumps``, pickling, ``copy``;
    ``dict(result)`` and ``{**result}`` are plain dicts again.  A key that is also the name
    of a dict method (``items``, ``values``, ``keys``, ...) is read with ``result[key]``;
    no result of the package uses such a key.
    """

    __slots__ = ()

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}; its keys: "
                                 f"{', '.join(map(str, self)) or 'none'}") from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}; its keys: "
                                 f"{', '.join(map(str, self)) or 'none'}") from None

    def __dir__(self) -> list:
        return sorted(set(super().__dir__()) | {k for k in self if isinstance(k, str)})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def copy(self):
        """A shallow copy of the same type (``dict.copy`` would give a plain dict)."""
        return type(self)(self)
