"""Live views of a registry: a tuple of names and a mapping computed again at every use.

The registries of the package (the Lipschitz methods, reference.lipschitz._methods; the
losses, reference.nn._losses) expose their names and fields through these views, so a
module-level constant such as ``METHODS`` or ``LOSSES`` follows a later registration (a
test's, a user's) instead of keeping the names known at import.  A leaf module.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence


class NameView(Sequence):
    """A tuple of names computed from a registry on each use (a live view).

    Parameters
    ----------
    compute : callable
        ``compute() -> tuple of str``, read again at every access.

    Notes
    -----
    It compares equal to the tuple it holds and prints as that tuple, so ``METHODS``,
    ``LOSSES`` and the verdict's stage tuples read as before while following later
    registrations.
    """

    def __init__(self, compute: Callable[[], tuple[str, ...]]) -> None:
        self._compute = compute

    def __getitem__(self, index):
        return self._compute()[index]

    def __len__(self) -> int:
        return len(self._compute())

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, NameView) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(self._compute())


class RecordView(Mapping):
    """A read-only mapping computed from a registry on each use (a live view).

    Parameters
    ----------
    compute : callable
        ``compute() -> dict``, read again at every access.
    """

    def __init__(self, compute: Callable[[], dict]) -> None:
        self._compute = compute

    def __getitem__(self, key):
        return self._compute()[key]

    def __len__(self) -> int:
        return len(self._compute())

    def __iter__(self) -> Iterator:
        return iter(self._compute())

    def __repr__(self) -> str:
        return repr(self._compute())
