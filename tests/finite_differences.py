"""Central finite differences for the gradient checks of the tests."""
import numpy as np


def central_difference(fn, array, h=1e-6):
    """d fn() / d array by (fn(a + h e_i) - fn(a - h e_i)) / 2h, perturbing `array` in place
    (restored afterwards); fn takes no argument and returns a float."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + h
        plus = fn()
        array[idx] = old - h
        minus = fn()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, b):
    """max |a - b| / max |b| (b the reference)."""
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)
