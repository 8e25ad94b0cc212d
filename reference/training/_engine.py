"""The engines of `train`'s minibatch loop: the NumPy loop (the reference) or compiled.

`TrainConfig.engine` chooses: ``'numpy'`` runs the loop of reference.training._train step by
step (forward, backward, penalties and optimiser steps as NumPy calls: the readable
reference); ``'compiled'`` runs all the minibatch steps of an epoch in one call of a loop
compiled by numba (reference.training._engine_kernels), the same computation on the same
numbers; ``'auto'`` takes the compiled engine when it supports the recipe and numba imports,
else the NumPy loop, and `train`'s history says which ran and why.

The compiled engine covers networks of Dense layers (with or without a bias) and the
activations spline (uniform grid), relu, leaky_relu, prelu and identity, in any order; the
losses squared, logistic and xent; TV2 and BV2 with or without prox; Adam and SGD; any batch
size and learning-rate schedule (the loop sets each epoch's learning rates); both
conventions of `TrainConfig.convention`, the project's and DeepSplines' per-batch one
(reference.training._convention).  Both engines draw the same minibatches and take the same
steps with the same floating-point operations: the compiled loop calls the BLAS functions
numpy's matmul calls and numpy's exp, and writes every other operation in numpy's order, so
the bits are the same (it needs numpy built with scipy-openblas, as numpy's wheels are, to
find them: `numpy_blas`).  tests/training/test_engine.py checks that the parameters after
200 steps agree to 1e-12 relative on every supported recipe, and bit for bit on four.

Between epochs the state lives where the NumPy loop keeps it (the network's parameter arrays,
the optimisers' moments and step counts), so the per-epoch evaluation, the finiteness check
and the sparsification after training are the NumPy loop's own, and a step the NumPy loop
would stop on is handed back to it (`CompiledEngine.epoch`).
"""
from __future__ import annotations

import ctypes
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np

from reference.nn._network import Dense, Network
from reference.nn._ramps import Identity, LeakyReLU, PReLU, ReLU
from reference.nn._spline_activation import SplineActivation
from reference.nn._spline_grid import MAX_MAGNITUDE, MIN_COEFFICIENT
from reference.training import _convention as convention
from reference.training import _engine_kernels as kernels

ENGINES = ("auto", "numpy", "compiled")
LAYER_KINDS = {Dense: kernels.DENSE, SplineActivation: kernels.SPLINE, ReLU: kernels.RELU,
               LeakyReLU: kernels.LEAKY_RELU, PReLU: kernels.PRELU,
               Identity: kernels.IDENTITY}
LOSS_CODES = {"squared": kernels.SQUARED, "logistic": kernels.LOGISTIC, "xent": kernels.XENT}
REGULARISER_NAMES = ("tv2", "bv2")
CONVENTION_CODES = {"project": kernels.PROJECT, "deepsplines": kernels.DEEPSPLINES}
_compiled: dict[str, Any] = {}


def numpy_blas() -> tuple[tuple | None, str | None]:
    """The CBLAS functions that numpy's matmul calls, as ctypes functions.

    The compiled engine computes the matrix products of the NumPy loop with them, choosing
    among them as numpy does (_engine_kernels.matmul), hence the same bits: the other
    operations are written out in numpy's order.  Found for numpy built with
    scipy-openblas (numpy's wheels on Linux, Windows and x86-64 macOS): its library is the
    one threadpoolctl lists inside numpy's installation, its symbols ``scipy_cblas_*``,
    with the suffix ``64_`` and 64-bit integers when built with USE64BITINT.

    Returns
    -------
    functions : tuple or None
        (dgemm, dgemv, ddot), or None when they cannot be found.
    reason : str or None
        Why not (None when found).
    """
    if "blas" not in _compiled:
        _compiled["blas"] = _find_numpy_blas()
    return _compiled["blas"]


def _find_numpy_blas() -> tuple[tuple | None, str | None]:
    config = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})
    if config.get("name") != "scipy-openblas":
        return None, (f"numpy uses the BLAS {config.get('name')!r}, not scipy-openblas (the "
                      f"compiled engine calls numpy's BLAS to take the same steps)")
    from threadpoolctl import threadpool_info

    home = Path(np.__file__).resolve().parent
    paths = [Path(info["filepath"]).resolve() for info in threadpool_info()
             if info.get("internal_api") == "openblas"]
    paths = [path for path in paths if path.parent.name.startswith(("numpy", ".dylibs"))
             and (path.parent.parent == home.parent or path.parent.parent == home)]
    if len(paths) != 1:
        return None, f"numpy's OpenBLAS library not identified among {paths}"
    wide = "USE64BITINT" in config.get("openblas configuration", "")
    suffix, integer = ("64_", ctypes.c_int64) if wide else ("", ctypes.c_int)
    library = ctypes.CDLL(str(paths[0]))
    enum, real, pointer = ctypes.c_int, ctypes.c_double, ctypes.c_void_p
    prototypes: dict[str, tuple[Any, ...]] = {
        "dgemm": (None, enum, enum, enum, integer, integer, integer, real, pointer, integer,
                  pointer, integer, real, pointer, integer),
        "dgemv": (None, enum, enum, integer, integer, real, pointer, integer, pointer,
                  integer, real, pointer, integer),
        "ddot": (real, integer, pointer, integer, pointer, integer)}
    functions = []
    for name, (result, *arguments) in prototypes.items():
        symbol = f"scipy_cblas_{name}{suffix}"
        if not hasattr(library, symbol):
            return None, f"{symbol} not found in {paths[0].name}"
        functions.append(ctypes.CFUNCTYPE(result, *arguments)((symbol, library)))
    return tuple(functions), None


def _numpy_exp(source: int, target: int, n: int) -> None:
    """target[:n] = np.exp(source[:n]) for two float64 arrays given by their addresses."""
    shape = (n,)
    values = np.ctypeslib.as_array(ctypes.cast(source, ctypes.POINTER(ctypes.c_double)), shape)
    out = np.ctypeslib.as_array(ctypes.cast(target, ctypes.POINTER(ctypes.c_double)), shape)
    np.exp(values, out=out)


# numpy's exponential, for the compiled softmax (numpy's SIMD exp is not libm's, bit for bit)
NUMPY_EXP = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(_numpy_exp)


def numba_missing() -> str | None:
    """Why numba cannot be used (None when it imports)."""
    try:
        import numba  # noqa: F401
    except ImportError as error:
        return f"numba is not installed ({error})"
    return None


def compiled_epoch() -> Callable:
    """`_engine_kernels.train_epoch` compiled by numba (nogil, cached on disk), made once.

    Each kernel function is compiled with a namespace in which the functions it calls are
    their compiled versions (numba resolves them when it compiles the caller): the module
    itself stays plain Python, importable without numba.
    """
    if "train_epoch" not in _compiled:
        import numba

        jit = numba.njit(nogil=True, cache=True, error_model="numpy")   # IEEE inf and NaN
        scope: dict[str, Any] = dict(vars(kernels))
        for name, function in vars(kernels).items():
            if not (isinstance(function, types.FunctionType)
                    and function.__module__ == kernels.__name__):
                continue
            clone = types.FunctionType(function.__code__, scope, name)
            clone.__qualname__, clone.__module__ = function.__qualname__, function.__module__
            clone.__doc__ = function.__doc__
            scope[name] = jit(clone)
        _compiled["train_epoch"] = scope["train_epoch"]
    return _compiled["train_epoch"]


def unsupported(net: Network, config: Any) -> str | None:
    """Why the compiled engine cannot train `net` with `config` (None when it can)."""
    for i, layer in enumerate(net.layers):
        if type(layer) not in LAYER_KINDS:
            return (f"layer {i} is a {layer.kind!r} layer (the compiled engine covers dense, "
                    f"spline, relu, leaky_relu, prelu and identity layers)")
    if config.loss not in LOSS_CODES:
        return f"loss {config.loss!r} (the compiled engine covers {', '.join(LOSS_CODES)})"
    if config.reg not in REGULARISER_NAMES:
        return f"reg {config.reg!r} (the compiled engine covers tv2 and bv2)"
    if config.convention not in CONVENTION_CODES:
        return (f"convention {config.convention!r} (the compiled engine covers "
                f"{', '.join(CONVENTION_CODES)})")
    return None


class NumpyEngine:
    """The NumPy loop of `train` takes every minibatch step itself (the reference).

    Parameters
    ----------
    n_samples : int
        M, the number of training samples.
    batch_size : int
        The minibatch size.
    record : dict
        What `train`'s history records about the engine.
    """
    name = "numpy"

    def __init__(self, n_samples: int, batch_size: int, record: dict) -> None:
        self.starts = range(0, n_samples, batch_size)
        self.record = record

    def epoch(self, order: np.ndarray) -> range:
        """Leave every minibatch of the epoch to the NumPy loop.

        Parameters
        ----------
        order : ndarray of shape (n_samples,)
            The epoch's permutation of the samples (unused).

        Returns
        -------
        starts : range
            The first row in `order` of every minibatch: 0, batch_size, ...
        """
        return self.starts


class CompiledEngine:
    """All the minibatch steps of an epoch in one compiled call.

    Parameters
    ----------
    net : Network
        The network, trained in place; every layer a kind of `LAYER_KINDS`.
    x : ndarray of shape (n_samples, n_in)
        The training inputs, checked.
    targets : ndarray
        The checked targets (``check_targets``): (n_samples, n_out) floats, or (n_samples,)
        class labels for 'xent'.
    config : TrainConfig
        The recipe (validated): loss, batch size, mu, lam, reg, prox.
    optimisers : list
        `train`'s optimisers (an Adam or SGD over the weights, biases and PReLU slopes, then
        the splines' Adam); the engine updates their moments and step counts.
    record : dict
        What `train`'s history records about the engine.

    Notes
    -----
    The parameters are gathered into one flat vector at the start of each epoch (each
    optimiser's arrays contiguous, in the order of its moments) and written back into the
    network's arrays at its end; the optimisers' moment arrays are updated in place.  The
    penalties use the factors of the NumPy loop: 'project' ``2 mu / M`` for the dense
    weights, ``lam / M`` for the regulariser and the prox threshold ``lr_spline lam / M``;
    'deepsplines' ``mu`` for every parameter that is not a spline coefficient, ``lam`` and
    ``lr_spline lam``.
    """
    name = "compiled"

    def __init__(self, net: Network, x: np.ndarray, targets: np.ndarray, config: Any,
                 optimisers: list, record: dict) -> None:
        self.config, self.optimisers, self.record = config, optimisers, record
        self.run = compiled_epoch()
        blas = numpy_blas()[0]
        assert blas is not None                       # make_engine checked numpy_blas()
        self.blas: tuple = blas
        m = x.shape[0]
        self.n_samples, self.batch_size = m, int(config.batch_size)
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        if config.loss == "xent":
            self.y_real = np.zeros((1, 1))
            self.y_label = np.ascontiguousarray(targets, dtype=np.int64)
        else:
            self.y_real = np.ascontiguousarray(targets, dtype=np.float64)
            self.y_label = np.zeros(1, dtype=np.int64)

        # theta: the first optimiser's arrays in its order, the second's, then any other
        grouped = [p for o in optimisers for p in o.params.values()]
        held = {id(p) for p in grouped}
        self.params = grouped + [p for _, p in net.named_params() if id(p) not in held]
        self.offsets = np.cumsum([0] + [p.size for p in self.params])
        offset_of = {id(p): int(o) for p, o in zip(self.params, self.offsets[:-1])}
        self.theta = np.empty(int(self.offsets[-1]))
        self.grad = np.zeros(int(self.offsets[-1]))
        # the factors of the penalties' gradients, as train forms them: 'project'
        # (2 mu / M) W and (lam / M) grad R, 'deepsplines' mu theta and lam grad R
        self.deepsplines = config.convention == "deepsplines"
        decay = config.mu if self.deepsplines else 2 * config.mu / m
        self.reg_factor = config.lam if self.deepsplines else config.lam / m
        self.points = np.zeros(0)
        widths = self._layer_table(net, offset_of, decay)
        self._buffers(widths, min(self.batch_size, m))

        self.reg_mode = kernels.REG_NONE
        splines = self.intercepts.size > 0
        if splines and config.lam > 0:
            if config.reg == "tv2":
                self.reg_mode = kernels.REG_NONE if config.prox else kernels.REG_TV2
            else:
                self.reg_mode = (kernels.REG_BV2_WITHOUT_TV2 if config.prox
                                 else kernels.REG_BV2)
        self.prox = bool(config.prox and config.lam > 0 and splines)

        self.groups = [self._group(o, offset_of) for o in optimisers[:2]]
        while len(self.groups) < 2:
            self.groups.append(self._group(None, offset_of))
        self.saved = np.zeros(self.theta.size + sum(g["m"].size + g["v"].size
                                                    for g in self.groups))

    def _layer_table(self, net: Network, offset_of: dict, decay: float) -> list[int]:
        """Fill layer_int and layer_float (one row per layer, columns of _engine_kernels)
        and, for 'deepsplines' with BV2, the splines' evaluation points at 0 and 1; returns
        the widths N_0 .. N_L of the layers' inputs and output."""
        layers = net.layers
        points: list[np.ndarray] = []
        self.layer_int = np.full((len(layers), 10), -1, dtype=np.int64)
        self.layer_float = np.zeros((len(layers), 7))
        widths = [net.n_in]
        self.table_size = self.work_size = self.sums_size = 0
        for i, layer in enumerate(layers):
            kind = LAYER_KINDS[type(layer)]
            n_in = widths[-1]
            n_out = layer.n_out if layer.n_out is not None else n_in
            widths.append(n_out)
            row, values = self.layer_int[i], self.layer_float[i]
            row[kernels.KIND], row[kernels.N_IN], row[kernels.N_OUT] = kind, n_in, n_out
            row[kernels.DECAY_ALL] = int(self.deepsplines and convention.decayed(layer))
            values[kernels.DECAY] = decay
            if kind == kernels.DENSE:
                row[kernels.PARAM] = offset_of[id(layer.params["weight"])]
                if "bias" in layer.params:
                    row[kernels.BIAS] = offset_of[id(layer.params["bias"])]
            elif kind == kernels.SPLINE:
                spline = layer.spline
                row[kernels.PARAM] = offset_of[id(layer.params["coefficients"])]
                row[kernels.TABLE], row[kernels.SIZE] = self.table_size, spline.size
                row[kernels.BLOCK] = spline._block_rows()
                values[kernels.X_MIN], values[kernels.STEP] = spline.x_min, spline.step
                values[kernels.INV_STEP] = 1.0 / spline.step         # as LinearSpline._grid
                values[kernels.SNAP] = spline.knot_snap
                values[kernels.TOP] = float(spline.size - 2)
                n = spline.coefficients.size
                self.table_size += n
                self.sums_size = max(self.sums_size, 2 * n)
                self.work_size = max(self.work_size, 4 * n_in + n + spline.size)
                if self.deepsplines and self.config.reg == "bv2":
                    row[kernels.POINTS] = sum(a.size for a in points)
                    points += self._evaluation_points(spline.step, spline.size)
            elif kind == kernels.PRELU:
                row[kernels.PARAM] = offset_of[id(layer.params["slope"])]
            elif kind == kernels.LEAKY_RELU:
                values[kernels.LEAKY_SLOPE] = layer.slope
        if points:
            self.points = np.concatenate(points)
        return widths

    @staticmethod
    def _evaluation_points(step: float, size: int) -> list[np.ndarray]:
        """DeepSplines' evaluation of a spline at 0 and 1 (_convention.evaluation_point):
        [i, frac, left, right] at 0, the same at 1, then the weights W_0 and W_1 (K each)."""
        at = [convention.evaluation_point(step, size, z) for z in (0.0, 1.0)]
        return [np.array([float(i), frac, left, right]) for i, frac, left, right, _ in at] + [
            weights for *_, weights in at]

    def _buffers(self, widths: list[int], rows: int) -> None:
        """The work arrays of a step: each layer's input and output for `rows` rows, two
        gradient buffers, the splines' piece tables and scratch."""
        self.h_off = np.cumsum([0] + [rows * w for w in widths]).astype(np.int64)
        self.h = np.zeros(int(self.h_off[-1]))
        self.g = np.zeros(rows * max(widths))
        self.g_next = np.zeros(rows * max(widths))
        self.intercepts, self.slopes = np.zeros(self.table_size), np.zeros(self.table_size)
        self.sums, self.work = np.zeros(self.sums_size), np.zeros(self.work_size)

    @staticmethod
    def _group(optimiser, offset_of: dict) -> dict:
        """The kernel's view of an optimiser: kind, the offset of its parameters in theta
        (contiguous, in its flat order), its moments and hyper-parameters."""
        empty = np.zeros(0)
        if optimiser is None:
            return {"optimiser": None, "kind": kernels.NO_OPTIMISER, "start": 0, "m": empty,
                    "v": empty, "hyper": np.zeros(6)}
        arrays = list(optimiser.params.values())
        start = offset_of[id(arrays[0])] if arrays else 0
        if "momentum" in vars(optimiser):                        # SGD
            hyper = np.zeros(6)
            hyper[kernels.LR], hyper[kernels.MOMENTUM] = optimiser.lr, optimiser.momentum
            return {"optimiser": optimiser, "kind": kernels.SGD, "start": start, "m": empty,
                    "v": optimiser.v, "hyper": hyper}
        hyper = np.array([optimiser.lr, optimiser.beta1, 1 - optimiser.beta1,
                          optimiser.beta2, 1 - optimiser.beta2, optimiser.eps])
        return {"optimiser": optimiser, "kind": kernels.ADAM, "start": start,
                "m": optimiser.m, "v": optimiser.v, "hyper": hyper}

    @staticmethod
    def _corrections(group: dict, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Adam's 1 - beta1^t and 1 - beta2^t for the next `steps` steps, formed as Adam.step
        forms them (Python floats), kept for t = 1 .. the largest t asked so far."""
        o = group["optimiser"]
        if group["kind"] != kernels.ADAM:
            return np.zeros(0), np.zeros(0)
        known = group.setdefault("corrections", (np.zeros(0), np.zeros(0)))
        if known[0].size < o.t + steps:
            t = range(1, 2 * (o.t + steps) + 1)
            known = group["corrections"] = (np.array([1 - o.beta1 ** s for s in t]),
                                            np.array([1 - o.beta2 ** s for s in t]))
        return known[0][o.t:o.t + steps], known[1][o.t:o.t + steps]

    def _prox_threshold(self) -> float:
        """The prox step's threshold as train forms it (_train._prox_threshold): the splines'
        learning rate times lam ('deepsplines'), divided by M ('project')."""
        spline_lr = self.optimisers[-1].lr
        if self.deepsplines:
            return spline_lr * self.config.lam
        return spline_lr * self.config.lam / self.n_samples

    def epoch(self, order: np.ndarray) -> range:
        """Take the epoch's minibatch steps, compiled.

        Parameters
        ----------
        order : ndarray of shape (n_samples,)
            The epoch's permutation of the samples; minibatch i is
            ``order[i * batch_size:(i + 1) * batch_size]``.

        Returns
        -------
        starts : range
            The minibatches left to the NumPy loop: none, or from the first step the NumPy
            loop would stop on (a non-finite output, a BV2 value beyond float64, a prox step
            leaving the coefficients' range), which it then takes and reports.
        """
        for p, start in zip(self.params, self.offsets[:-1]):
            self.theta[start:start + p.size] = p.reshape(-1)
        steps = -(-self.n_samples // self.batch_size)
        args = []
        for group in self.groups:
            o = group["optimiser"]
            if o is not None:
                group["hyper"][kernels.LR] = o.lr
            args += [group["kind"], group["start"], group["m"], group["v"], group["hyper"],
                     *self._corrections(group, steps)]
        config = self.config
        status, done = self.run(
            *self.blas, NUMPY_EXP, self.x, self.y_real, self.y_label,
            np.ascontiguousarray(order, dtype=np.int64), self.batch_size,
            LOSS_CODES[config.loss], self.layer_int, self.layer_float, self.theta, self.grad,
            self.h, self.h_off, self.g, self.g_next, self.intercepts, self.slopes, self.sums,
            self.work, self.reg_mode, self.reg_factor, *args, self.prox,
            self._prox_threshold(), self.saved, MIN_COEFFICIENT, MAX_MAGNITUDE,
            CONVENTION_CODES[config.convention], convention.BCE_EPSILON, self.points)
        for p, start in zip(self.params, self.offsets[:-1]):
            p[...] = self.theta[start:start + p.size].reshape(p.shape)
        for group in self.groups:
            if group["kind"] == kernels.ADAM:
                group["optimiser"].t += done
        if status == kernels.DONE:
            return range(0)
        return range(done * self.batch_size, self.n_samples, self.batch_size)


def make_engine(net: Network, x: np.ndarray, targets: np.ndarray, config: Any,
                optimisers: list) -> NumpyEngine | CompiledEngine:
    """The engine `config.engine` asks for, with the record `train`'s history keeps.

    Parameters
    ----------
    net : Network
        The network to train.
    x : ndarray of shape (n_samples, n_in)
        The checked training inputs.
    targets : ndarray
        The checked targets.
    config : TrainConfig
        The validated recipe; ``engine`` is 'auto', 'numpy' or 'compiled'.
    optimisers : list
        `train`'s optimisers.

    Returns
    -------
    engine : NumpyEngine or CompiledEngine
        ``engine.record`` is {'name': the engine that runs, 'requested': config.engine,
        'reason': why 'auto' took the NumPy loop (None otherwise)}.

    Raises
    ------
    ValueError
        Naming ``engine``, when 'compiled' is asked for a recipe it does not support or
        numba is not installed.
    """
    reason = None
    if config.engine != "numpy":
        recipe = unsupported(net, config)
        reason = recipe or numba_missing() or numpy_blas()[1]
        if reason is None:
            record = {"name": "compiled", "requested": config.engine, "reason": None}
            return CompiledEngine(net, x, targets, config, optimisers, record)
        if config.engine == "compiled":
            what = "does not cover this recipe" if recipe else "cannot run here"
            raise ValueError(f"engine: 'compiled' {what}: {reason}; use engine='numpy' or "
                             f"'auto'")
    record = {"name": "numpy", "requested": config.engine, "reason": reason}
    return NumpyEngine(x.shape[0], int(config.batch_size), record)
