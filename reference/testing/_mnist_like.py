"""MNIST-format data generated here (no download is possible): ten class prototypes of
Gaussian strokes on a 28 x 28 grid, each image its class's prototype moved by up to two
pixels, with pixel noise, as uint8 like MNIST; written as an .npz that reference.data's
MNIST reader reads (`mnist_like_npz`).  Used by the theory checks and the benchmarks for a
real-size cross-entropy layer problem (reference.convex)."""
from __future__ import annotations

import numpy as np

from reference.io._files import atomic_write


def mnist_like(m: int, m_test: int, seed: int = 0, size: int = 28) -> dict:
    """{x_train (m, size, size) uint8, y_train (m,) uint8, x_test, y_test}: class k's
    prototype is the sum of 4 Gaussian blobs (width size / 10) at seeded positions; an
    image is the prototype of its label shifted by -2..2 pixels per axis plus N(0, 90^2)
    pixel noise, clipped to 0..255.  Labels cycle through 0..9 in a seeded order."""
    if m < 10 or m_test < 1:
        raise ValueError(f"m, m_test: expected m >= 10 and m_test >= 1, got {m}, {m_test}")
    rng = np.random.default_rng(seed)
    grid = np.arange(size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    width = size / 10
    images = []
    for _ in range(10):
        centres = rng.uniform(0.2 * size, 0.8 * size, (4, 2))
        img = sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
                  for cy, cx in centres)
        images.append(255 * img / img.max())
    protos = np.array(images)

    def draw(count):
        labels = rng.permutation(np.arange(count) % 10)
        shifts = rng.integers(-2, 3, (count, 2))
        images = np.empty((count, size, size))
        for i, (label, (dy, dx)) in enumerate(zip(labels, shifts)):
            images[i] = np.roll(protos[label], (dy, dx), axis=(0, 1))
        images += rng.normal(0.0, 90.0, images.shape)
        return np.clip(np.round(images), 0, 255).astype(np.uint8), labels.astype(np.uint8)
    x_train, y_train = draw(m)
    x_test, y_test = draw(m_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def mnist_like_npz(path, m: int, m_test: int, seed: int = 0) -> str:
    """Write `mnist_like` (m, m_test, seed) to the .npz `path` (atomically); the path."""
    arrays = mnist_like(m, m_test, seed)
    return str(atomic_write(path, lambda f: np.savez(f, **arrays)))
