"""Reference implementation of deep neural networks with trainable linear-spline
activations and a controlled Lipschitz constant (Aziznejad, Gupta, Campos, Unser,
IEEE Trans. Signal Processing 2020, arXiv:2001.06263).  NumPy, float64 throughout."""

__version__ = "0.1.0"
