"""The data sets: generated two-dimensional sets, the test grid, digits and MNIST (read from a path the user gives)."""
from reference.data._datasets import (
    DATASETS,
    load,
    two_d,
    mnist,
    test_grid,
    circle_labels,
    s_shape_labels,
)

__all__ = [
    "DATASETS",
    "load",
    "two_d",
    "mnist",
    "test_grid",
    "circle_labels",
    "s_shape_labels",
]
