"""The data sets: generated two-dimensional sets, the test grid, digits and MNIST.

Nothing is downloaded: the two-dimensional sets are generated from a seed, the digits are
scikit-learn's bundled set, and MNIST is read from a path the user gives (`load`).
"""
from reference.data._datasets import (
    DATASETS,
    circle_labels,
    load,
    mnist,
    s_shape_labels,
    test_grid,
    two_d,
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
