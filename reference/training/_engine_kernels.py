"""The compiled training engine's loops: one epoch of minibatch steps of `train`, fused.

Plain Python loops over flat float64 arrays, compiled by numba on first use
(reference.training._engine `compiled_epoch`; numba is optional, this module imports numpy
only).  Each function does what one part of the NumPy loop of reference.training._train does
(its readable reference), with the same floating-point operations in the same order: the
element-wise operations, the spline kernels of reference.nn._kernels, numpy's sums (pairwise
along a contiguous axis, row by row down a column), Adam and SGD; the matrix products call
the BLAS functions numpy's matmul calls, chosen as numpy chooses (`matmul`).  The exponential of
the cross-entropy's softmax is numpy's own (a callback: numpy's SIMD routine is not libm's),
that of the logistic loss libm's (as scipy's expit).  Hence the same bits as the NumPy loop;
tests/training/test_engine.py checks the agreement to 1e-12 after 200 steps.

The network is a table, one row per layer (`layer_int`, `layer_float`, columns named below);
its parameters one flat vector `theta`, each array at its offset, row-major (the arrays of the
first optimiser in its order, then the second's, then any other); the inputs and outputs of
the layers for one minibatch live in one flat buffer `h`, layer l's input at ``h_off[l]``
(rows of its width).  For a minibatch B
of size |B| with rows x[order[B]], a step is

    forward:   z = h W^T + b (Dense), y = sigma(z) (spline: the kernel's tables
               b_k = c_k - k dc_k, s_k = dc_k / T; relu, leaky_relu, prelu, identity);
    loss:      G = dE/df / |B| (squared f - y, logistic expit(f) - y, xent softmax(f) - e_y);
    backward:  dW = G^T h, db = sum_rows G, G <- G W; splines: G <- G sigma'(z) and the
               coefficient gradient A_j - B_j + B_{j-1} per row block (reference.nn._kernels);
    penalties: dW += (2 mu / M) W;  dc += (lambda / M) grad R, R = TV2
               (D2^T sign(D2 c) / T) or BV2 (+ the backward of |sigma(0)| + |sigma(1)|);
               with prox the TV2 part is left to the proximal step;
    update:    Adam (m = b1 m + (1 - b1) g, v = b2 v + ((1 - b2) g) g,
               p -= ((m / c1) lr) / (sqrt(v / c2) + eps)) or SGD (v = momentum v + g,
               p -= v lr), each optimiser over its own contiguous part of theta;
    prox:      the jumps a = D2 c / T soft-thresholded, the coefficients rebuilt from c_0 and
               the first slope (reference.training._train.prox_tv2).

Convention DEEPSPLINES (reference.training._convention, DeepSplines' per-batch objective)
changes the arithmetic as that module does: the logistic loss's gradient is torch's BCELoss
on sigmoid(f) (`loss_gradient`), the weight decay covers every parameter that is not a
spline coefficient, and TV2 and BV2 are taken in DeepSplines' arithmetic
(`deepsplines_regulariser`); the factors (mu, lam, the prox threshold lr lam) are set by the
caller.

A step that the NumPy loop would stop on (a non-finite network output, a BV2 value at 0 or 1
beyond float64, coefficients after prox outside LinearSpline's range) is not taken: the epoch
returns its index with the state as it was before it, and the NumPy loop redoes that step and
raises its own error.

Constants passed to another function of this module are written int(0), bool(True), ...:
numba compiles a function once per type of its arguments, and a bare constant is typed as its
own value (one more compilation per constant).
"""
from __future__ import annotations

import math

import numpy as np

# layer kinds (layer_int[:, KIND])
DENSE, SPLINE, RELU, LEAKY_RELU, PRELU, IDENTITY = range(6)
# layer_int columns: kind, widths, the theta offsets of the layer's parameters (weight,
# coefficients or PReLU slopes; the bias, -1 without one), the offset of a spline's piece
# tables, its size K, the rows per block of its backward (reference.nn._kernels), whether
# the weight decay covers the bias and PReLU slopes too, the offset of a spline's
# evaluation points in `points` (convention DEEPSPLINES with BV2)
KIND, N_IN, N_OUT, PARAM, BIAS, TABLE, SIZE, BLOCK, DECAY_ALL, POINTS = range(10)
# layer_float columns: a spline's x_min, fl(1/T), T, knot snap s, K - 2; a leaky ReLU's slope;
# the factor of the weight decay gradient (of a Dense weight; with DECAY_ALL of every
# parameter of the layer)
X_MIN, INV_STEP, STEP, SNAP, TOP, LEAKY_SLOPE, DECAY = range(7)
# losses
SQUARED, LOGISTIC, XENT = range(3)
# conventions (reference.training._convention): the project's, DeepSplines' per-batch one
PROJECT, DEEPSPLINES = range(2)
# the regulariser's gradient: none, TV2, BV2, BV2 minus its TV2 part (with prox)
REG_NONE, REG_TV2, REG_BV2, REG_BV2_WITHOUT_TV2 = range(4)
# optimisers
NO_OPTIMISER, ADAM, SGD = range(3)
# hyper-parameters of an optimiser (one float64 row each): lr, beta1, 1 - beta1, beta2,
# 1 - beta2, eps (Adam); lr, momentum (SGD: columns LR and MOMENTUM)
LR, BETA1, ONE_MINUS_BETA1, BETA2, ONE_MINUS_BETA2, EPS = range(6)
MOMENTUM = 1
# why an epoch stopped before its end
DONE, NONFINITE_OUTPUT, NONFINITE_BV2, PROX_OUT_OF_RANGE = range(4)
PAIRWISE_BLOCK = 128       # numpy's pairwise summation: blocks of this many terms
# CBLAS enumerations: row- and column-major storage, no transpose and transpose
ROW_MAJOR, COL_MAJOR, NO_TRANS, TRANS = 101, 102, 111, 112


def block_sum(a, start, n):
    """0.0 + the sum of a[start:start + n], n <= PAIRWISE_BLOCK, in numpy's order: in index
    order for n < 8, else 8 partial sums of the indices equal mod 8, added as a tree, then
    the terms left over."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += a[start + i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[start + i]
        r1 += a[start + i + 1]
        r2 += a[start + i + 2]
        r3 += a[start + i + 3]
        r4 += a[start + i + 4]
        r5 += a[start + i + 5]
        r6 += a[start + i + 6]
        r7 += a[start + i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += a[start + i]
        i += 1
    return total


def pairwise_sum(a, start, n):
    """0.0 + the sum of a[start:start + n] in numpy's pairwise order (np.sum along a
    contiguous axis): `block_sum` up to PAIRWISE_BLOCK terms, above it the sum of the two
    halves (the first of n // 2 - (n // 2) % 8 terms), each summed the same way; the
    recursion is walked with an explicit stack."""
    if n <= PAIRWISE_BLOCK:
        return block_sum(a, start, n)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    phases = np.zeros(64, np.int64)             # 0: left half next, 1: right half next
    lefts = np.empty(64)
    depth, value = 0, 0.0
    starts[0], sizes[0] = start, n
    while depth >= 0:
        first, size = starts[depth], sizes[depth]
        half = size // 2 - (size // 2) % 8
        if size <= PAIRWISE_BLOCK:
            value = block_sum(a, first, size)
            depth -= 1
        elif phases[depth] == 0:
            phases[depth] = 1
            depth += 1
            starts[depth], sizes[depth], phases[depth] = first, half, 0
        elif phases[depth] == 1:
            lefts[depth], phases[depth] = value, 2
            depth += 1
            starts[depth], sizes[depth], phases[depth] = first + half, size - half, 0
        else:
            value = lefts[depth] + value
            depth -= 1
    return value


def column_sum(a, start, rows, width, j):
    """0.0 + the sum of column j of the (rows, width) C-ordered block a[start:] as
    ``a.sum(axis=0)`` forms it: the column in pairwise order when width is 1 (then
    contiguous), else row by row."""
    if width == 1:
        return pairwise_sum(a, start + j, rows)
    total = 0.0
    for r in range(rows):
        total += a[start + r * width + j]
    return total


def blasable(stride1, stride2, d1, d2):
    """numpy's is_blasable2d, strides in elements (all positive here): a (d1, d2) operand
    that BLAS reads with leading dimension stride1."""
    return stride2 == 1 and stride1 >= d2


def gemv(dgemv, a, a0, a_sm, a_sn, b, b0, b_sn, c, c0, m, n):
    """numpy's DOUBLE_gemv: c[c0:c0 + m] = A b for A (m, n) at a[a0:] (strides a_sm, a_sn)
    and b at b[b0:] (stride b_sn), through cblas_dgemv."""
    if blasable(a_sm, a_sn, m, n):
        order, lda = COL_MAJOR, a_sm
    else:
        order, lda = ROW_MAJOR, a_sn
    dgemv(order, TRANS, n, m, 1.0, a[a0:].ctypes, lda, b[b0:].ctypes, b_sn, 0.0,
          c[c0:].ctypes, 1)


def matmul(dgemm, dgemv, ddot, a, a0, a_sm, a_sn, b, b0, b_sn, b_sp, c, c0, dm, dn, dp):
    """c[c0:] = a @ b as numpy's DOUBLE_matmul computes it, for a (dm, dn) at a[a0:] and
    b (dn, dp) at b[b0:] given by their strides in elements, c C-ordered (dm, dp); every
    operand is blasable (the engine's layouts are).  numpy's choice: cblas_ddot for a 1 x 1
    result; its own loop when a dimension is 0 or dn is 1; cblas_dgemv when dm or dp is 1;
    cblas_dgemm otherwise."""
    if dm == 1 and dp == 1 and dn > 0:                          # DOUBLE_dot
        c[c0] = 0.0 + ddot(dn, a[a0:].ctypes, a_sn, b[b0:].ctypes, b_sn)
    elif dm == 0 or dn <= 1 or dp == 0:                         # numpy's noblas loop
        for i in range(dm):
            for k in range(dp):
                acc = 0.0
                for j in range(dn):
                    acc += a[a0 + i * a_sm + j * a_sn] * b[b0 + j * b_sn + k * b_sp]
                c[c0 + i * dp + k] = acc
    elif dm == 1:                                               # vector @ matrix
        gemv(dgemv, b, b0, b_sp, b_sn, a, a0, a_sn, c, c0, dp, dn)
    elif dp == 1:                                               # matrix @ vector
        gemv(dgemv, a, a0, a_sm, a_sn, b, b0, b_sn, c, c0, dm, dn)
    else:
        trans_a, lda = (NO_TRANS, a_sm) if blasable(a_sm, a_sn, dm, dn) else (TRANS, a_sn)
        trans_b, ldb = (NO_TRANS, b_sn) if blasable(b_sn, b_sp, dn, dp) else (TRANS, b_sp)
        dgemm(ROW_MAJOR, trans_a, trans_b, dm, dp, dn, 1.0, a[a0:].ctypes, lda,
              b[b0:].ctypes, ldb, 0.0, c[c0:].ctypes, dp)


def piece(z, x_min, inv_step, snap, top):
    """(k, d, w): the piece k of z on the grid (clip(floor(w + s), 0, K-2), NaN to 0), with
    d = z - x_min and w = d * fl(1/T), as reference.nn._kernels locates it."""
    d = z - x_min
    w = d * inv_step
    v = w + snap
    if not v >= 0.0:                         # also NaN
        v = 0.0
    if v > top:
        v = top
    return int(v), d, w


def spline_tables(theta, p, channels, size, step, intercepts, slopes, offset):
    """The piece tables of the coefficients theta[p:p + C K] (LinearSpline._piece_tables):
    slope_k = dc_k / T, b_k = c_k - k dc_k, dc_k = c_{k+1} - c_k (0 in the last slot)."""
    for c in range(channels):
        base = p + c * size
        at = offset + c * size
        for k in range(size - 1):
            dc = theta[base + k + 1] - theta[base + k]
            intercepts[at + k] = theta[base + k] - float(k) * dc
            slopes[at + k] = dc / step
        intercepts[at + size - 1] = theta[base + size - 1] - float(size - 1) * 0.0
        slopes[at + size - 1] = 0.0 / step


def spline_backward(z, z_at, g, g_at, g_in, g_in_at, rows, channels, size, block, x_min,
                    inv_step, snap, top, slopes, offset, grad, p, sums):
    """Backward of the splines for `rows` rows of z (from z_at) and g (from g_at): grad_z
    = g sigma'(z) into g_in (from g_in_at, skipped when g_in_at < 0), and the coefficient
    gradient into grad[p:p + C K]: per block of `block` rows, A_j - B_j + B_{j-1} (A_j the
    sum of g, B_j of frac g over the block's rows with piece j, in row order), the blocks'
    parts added in order to 0 (reference.nn._kernels)."""
    n = channels * size
    for j in range(n):
        grad[p + j] = 0.0
    for first in range(0, rows, block):
        last = min(rows, first + block)
        for j in range(2 * n):
            sums[j] = 0.0
        for r in range(first, last):
            for c in range(channels):
                k, d, w = piece(z[z_at + r * channels + c], x_min, inv_step, snap, top)
                j = c * size + k
                gv = g[g_at + r * channels + c]
                if g_in_at >= 0:
                    g_in[g_in_at + r * channels + c] = gv * slopes[offset + j]
                sums[2 * j] += gv
                sums[2 * j + 1] += (w - float(k)) * gv
        for j in range(n):
            part = sums[2 * j] - sums[2 * j + 1]
            if j > 0:
                part += sums[2 * j - 1]
            grad[p + j] += part


def forward(dgemm, dgemv, ddot, layer_int, layer_float, theta, intercepts, slopes, h, h_off,
            rows):
    """The network's forward pass of `rows` rows, from h at h_off[0] to h at h_off[L]."""
    for l in range(layer_int.shape[0]):
        kind, n_in, n_out = layer_int[l, KIND], layer_int[l, N_IN], layer_int[l, N_OUT]
        src, dst, p = h_off[l], h_off[l + 1], layer_int[l, PARAM]
        if kind == DENSE:                                  # z = x @ W.T; z += b
            matmul(dgemm, dgemv, ddot, h, src, n_in, int(1), theta, p, int(1), n_in, h, dst,
                   rows, n_in, n_out)
            bias = layer_int[l, BIAS]
            if bias >= 0:
                for r in range(rows):
                    for j in range(n_out):
                        h[dst + r * n_out + j] += theta[bias + j]
        elif kind == SPLINE:
            size, offset = layer_int[l, SIZE], layer_int[l, TABLE]
            x_min, inv_step = layer_float[l, X_MIN], layer_float[l, INV_STEP]
            snap, top = layer_float[l, SNAP], layer_float[l, TOP]
            for r in range(rows):
                for c in range(n_in):
                    k, d, w = piece(h[src + r * n_in + c], x_min, inv_step, snap, top)
                    j = offset + c * size + k
                    h[dst + r * n_in + c] = slopes[j] * d + intercepts[j]
        else:
            for r in range(rows):
                for c in range(n_in):
                    z = h[src + r * n_in + c]
                    if kind == RELU:
                        y = z if (z >= 0.0 or z != z) else 0.0     # np.maximum(z, 0.0)
                    elif kind == LEAKY_RELU:
                        y = z if z >= 0.0 else layer_float[l, LEAKY_SLOPE] * z
                    elif kind == PRELU:
                        y = z if z >= 0.0 else theta[p + c] * z
                    else:
                        y = z
                    h[dst + r * n_in + c] = y


def loss_gradient(numpy_exp, loss, convention, bce_epsilon, out, at, rows, width, y_real,
                  y_label, batch, g, work):
    """G = dE/df / |B| for the network outputs out[at:] (rows x width) of the samples
    batch[0:rows]: squared f - y, logistic expit(f) - y (scipy's expit: 1 / (1 + exp(-f)),
    libm's exp; convention DEEPSPLINES: torch's BCELoss on p = expit(f),
    ((p - y) / max((1 - p) p, bce_epsilon)) (1 - p) p, as _convention.bce_on_sigmoid), xent
    softmax(f) - e_y (scipy's softmax: exp(f - max f) / its sum, the exponential by numpy
    itself: `numpy_exp` writes np.exp of its first argument's n values into its second's,
    which numpy computes with its own SIMD routine).  work: rows x width floats."""
    if loss == XENT:
        for r in range(rows):
            row = at + r * width
            top = out[row]
            for j in range(1, width):
                if out[row + j] > top or out[row + j] != out[row + j]:
                    top = out[row + j]
            for j in range(width):
                work[r * width + j] = out[row + j] - top
        numpy_exp(work.ctypes, g.ctypes, rows * width)
        for r in range(rows):
            total = pairwise_sum(g, r * width, width)
            for j in range(width):
                g[r * width + j] = g[r * width + j] / total
            g[r * width + y_label[batch[r]]] -= 1.0
    else:
        for r in range(rows):
            s = batch[r]
            for j in range(width):
                f = out[at + r * width + j]
                if loss == LOGISTIC and convention == DEEPSPLINES:
                    p = 1.0 / (1.0 + math.exp(-f))
                    q = (1.0 - p) * p
                    floor = q if (q >= bce_epsilon or q != q) else bce_epsilon
                    g[r * width + j] = (p - y_real[s, j]) / floor * (1.0 - p) * p
                elif loss == LOGISTIC:
                    g[r * width + j] = 1.0 / (1.0 + math.exp(-f)) - y_real[s, j]
                else:
                    g[r * width + j] = f - y_real[s, j]
    for i in range(rows * width):
        g[i] = g[i] / rows


def backward(dgemm, dgemv, ddot, layer_int, layer_float, theta, slopes, h, h_off, rows, g,
             g_next, grad, sums):
    """Backpropagate G (in g, rows x output width) through every layer, writing the gradient
    of every parameter into grad (same offsets as theta); g and g_next are work buffers."""
    for l in range(layer_int.shape[0] - 1, -1, -1):
        kind, n_in, n_out = layer_int[l, KIND], layer_int[l, N_IN], layer_int[l, N_OUT]
        src, p = h_off[l], layer_int[l, PARAM]
        if kind == DENSE:           # dW = G.T @ x, db = G.sum(axis=0), G <- G @ W
            matmul(dgemm, dgemv, ddot, g, int(0), int(1), n_out, h, src, n_in, int(1), grad,
                   p, n_out, rows, n_in)
            bias = layer_int[l, BIAS]
            if bias >= 0:
                for j in range(n_out):
                    grad[bias + j] = column_sum(g, int(0), rows, n_out, j)
            if l > 0:
                matmul(dgemm, dgemv, ddot, g, int(0), n_out, int(1), theta, p, n_in, int(1),
                       g_next, int(0), rows, n_out, n_in)
        elif kind == SPLINE:
            spline_backward(h, src, g, int(0), g_next, int(0 if l > 0 else -1), rows, n_in,
                            layer_int[l, SIZE], layer_int[l, BLOCK], layer_float[l, X_MIN],
                            layer_float[l, INV_STEP], layer_float[l, SNAP],
                            layer_float[l, TOP], slopes, layer_int[l, TABLE], grad, p, sums)
        else:
            if kind == PRELU:                  # d slope = (G min(z, 0)).sum(axis=0)
                for i in range(rows * n_in):
                    g_next[i] = g[i] * min(h[src + i], 0.0)
                for c in range(n_in):
                    grad[p + c] = column_sum(g_next, int(0), rows, n_in, c)
            for r in range(rows):
                for c in range(n_in):
                    z = h[src + r * n_in + c]
                    gv = g[r * n_in + c]
                    if kind == RELU:
                        slope = 1.0 if z >= 0.0 else 0.0
                    elif kind == LEAKY_RELU:
                        slope = 1.0 if z >= 0.0 else layer_float[l, LEAKY_SLOPE]
                    elif kind == PRELU:
                        slope = 1.0 if z >= 0.0 else theta[p + c]
                    else:
                        slope = 1.0
                    g_next[r * n_in + c] = gv if kind == IDENTITY else gv * slope
        g, g_next = g_next, g


def penalty_gradients(layer_int, layer_float, theta, intercepts, slopes, grad, reg_mode,
                      reg_factor, work, sums, convention, points):
    """Add the weight decay and the regulariser's (sub)gradient to grad; False when a BV2
    value sigma(0) or sigma(1) is beyond float64 (the NumPy loop's checked evaluation raises
    there).  work: at least 4 C + C K + K floats for every spline layer (BV2's inputs, signs
    and gradient, then the signs of D2 c of one channel)."""
    for l in range(layer_int.shape[0]):
        kind, p = layer_int[l, KIND], layer_int[l, PARAM]
        factor = layer_float[l, DECAY]
        if kind == DENSE:
            for i in range(layer_int[l, N_IN] * layer_int[l, N_OUT]):
                grad[p + i] += factor * theta[p + i]
            bias = layer_int[l, BIAS]
            if layer_int[l, DECAY_ALL] and bias >= 0:
                for j in range(layer_int[l, N_OUT]):
                    grad[bias + j] += factor * theta[bias + j]
        elif kind == PRELU and layer_int[l, DECAY_ALL]:
            for c in range(layer_int[l, N_IN]):
                grad[p + c] += factor * theta[p + c]
        elif kind == SPLINE and reg_mode != REG_NONE and convention == DEEPSPLINES:
            deepsplines_regulariser(layer_int, layer_float, l, theta, grad, reg_mode,
                                    reg_factor, work, points)
        elif kind == SPLINE and reg_mode != REG_NONE:
            channels, size = layer_int[l, N_IN], layer_int[l, SIZE]
            step = layer_float[l, STEP]
            extra = 0                           # work[extra:]: BV2's backward of |sigma(t)|
            if reg_mode != REG_TV2:
                if not bv2_extra_gradient(layer_int, layer_float, l, intercepts, slopes,
                                          work, sums):
                    return False
                extra = 4 * channels
            signs = 4 * channels + channels * size
            for c in range(channels):
                base = p + c * size
                for j in range(size - 2):
                    work[signs + j] = tv2_sign(theta, base, j)
                for k in range(size):                # (D2^T sign(D2 c))_k: exact integers
                    t = 0.0
                    if k <= size - 3:
                        t += work[signs + k]
                    if 1 <= k <= size - 2:
                        t -= 2.0 * work[signs + k - 1]
                    if k >= 2:
                        t += work[signs + k - 2]
                    tv2 = t / step
                    if reg_mode == REG_TV2:
                        value = tv2
                    elif reg_mode == REG_BV2:
                        value = tv2 + work[extra + c * size + k]
                    else:
                        value = (tv2 + work[extra + c * size + k]) - tv2
                    grad[base + k] += reg_factor * value
    return True


def sign(value):
    """np.sign: 1, -1, 0 (for 0 and -0) or NaN."""
    if value > 0.0:
        return 1.0
    if value < 0.0:
        return -1.0
    return 0.0 if value == 0.0 else value


def deepsplines_value(theta, base, size, step, points, at):
    """sigma(z) of the spline theta[base:base + K] as DeepSplines' forward computes it
    (_convention.values_at), z given by points[at:at + 4] = (i, frac, left, right)."""
    i, frac = int(points[at]), points[at + 1]
    left, right = points[at + 2], points[at + 3]
    return (theta[base + i + 1] * frac + theta[base + i] * (1.0 - frac)) + (
        left * ((theta[base + 1] - theta[base]) / step)
        + right * ((theta[base + size - 1] - theta[base + size - 2]) / step))


def deepsplines_regulariser(layer_int, layer_float, l, theta, grad, reg_mode, reg_factor,
                            work, points):
    """grad += lam * (a subgradient of R) for spline layer l in DeepSplines' arithmetic
    (_convention.regulariser_grad): TV2's entry k is ((0 + w0 s_k) + w1 s_{k-1}) + w2 s_{k-2}
    (out-of-range terms left out), s = sign(a), a_k = (w0 c_k + w1 c_{k+1}) + w2 c_{k+2},
    (w0, w1, w2) = (fl(1/T), fl(-2/T), fl(1/T)); BV2 adds (0 + sign(sigma(0)) W0_k)
    + sign(sigma(1)) W1_k, W_z the weights of `points` (after TV2's entry, or after 0 with
    prox).  work: K floats."""
    channels, size, p = layer_int[l, N_IN], layer_int[l, SIZE], layer_int[l, PARAM]
    step, at = layer_float[l, STEP], layer_int[l, POINTS]
    w0, w1, w2 = 1.0 / step, -2.0 / step, 1.0 / step
    for c in range(channels):
        base = p + c * size
        for j in range(size - 2):
            work[j] = sign((w0 * theta[base + j] + w1 * theta[base + j + 1])
                           + w2 * theta[base + j + 2])
        sign_zero = sign_one = 0.0
        if reg_mode != REG_TV2:
            sign_zero = sign(deepsplines_value(theta, base, size, step, points, at))
            sign_one = sign(deepsplines_value(theta, base, size, step, points, at + 4))
        for k in range(size):
            value = 0.0
            if reg_mode != REG_BV2_WITHOUT_TV2:
                if k <= size - 3:
                    value += w0 * work[k]
                if 1 <= k <= size - 2:
                    value += w1 * work[k - 1]
                if k >= 2:
                    value += w2 * work[k - 2]
            if reg_mode != REG_TV2:
                magnitudes = 0.0
                magnitudes += sign_zero * points[at + 8 + k]
                magnitudes += sign_one * points[at + 8 + size + k]
                value = value + magnitudes
            grad[base + k] += reg_factor * value


def tv2_sign(theta, base, j):
    """sign(D2 c)_j with D2 c computed as np.diff(c)[j+1] - np.diff(c)[j] (tv2_grad)."""
    return sign((theta[base + j + 2] - theta[base + j + 1])
                - (theta[base + j + 1] - theta[base + j]))


def bv2_extra_gradient(layer_int, layer_float, l, intercepts, slopes, work, sums):
    """work[4 C:4 C + C K] = the coefficient gradient of sum_c |sigma_c(0)| + |sigma_c(1)|
    (LinearSpline.bv2_grad: sign of the checked values, then the backward at zero_one);
    False when a value is not finite.  work[0:2C]: the inputs, work[2C:4C]: the signs."""
    channels, size = layer_int[l, N_IN], layer_int[l, SIZE]
    x_min, inv_step = layer_float[l, X_MIN], layer_float[l, INV_STEP]
    snap, top, offset = layer_float[l, SNAP], layer_float[l, TOP], layer_int[l, TABLE]
    for r in range(2):
        for c in range(channels):
            z = float(r)
            work[r * channels + c] = z
            k, d, w = piece(z, x_min, inv_step, snap, top)
            j = offset + c * size + k
            value = slopes[j] * d + intercepts[j]
            if not (abs(value) < np.inf and abs(slopes[j]) < np.inf):
                return False
            work[2 * channels + r * channels + c] = sign(value)
    spline_backward(work, int(0), work, 2 * channels, work, int(-1), int(2), channels, size,
                    layer_int[l, BLOCK], x_min, inv_step, snap, top, slopes, offset, work,
                    4 * channels, sums)
    return True


def adam_step(theta, grad, start, m, v, hyper, c1, c2):
    """One Adam step (reference.training._train.Adam.step) on theta[start:start + m.size]
    (contiguous slices: the loop vectorises)."""
    lr, beta1, one_minus_beta1 = hyper[LR], hyper[BETA1], hyper[ONE_MINUS_BETA1]
    beta2, one_minus_beta2, eps = hyper[BETA2], hyper[ONE_MINUS_BETA2], hyper[EPS]
    params, grads = theta[start:start + m.size], grad[start:start + m.size]
    for i in range(m.size):
        g = grads[i]
        mi = m[i] * beta1 + g * one_minus_beta1
        vi = v[i] * beta2 + (g * one_minus_beta2) * g
        m[i] = mi
        v[i] = vi
        params[i] -= ((mi / c1) * lr) / (math.sqrt(vi / c2) + eps)


def sgd_step(theta, grad, start, v, hyper):
    """One SGD step with momentum (reference.training._train.SGD.step) on
    theta[start:start + v.size]."""
    lr, momentum = hyper[LR], hyper[MOMENTUM]
    params, grads = theta[start:start + v.size], grad[start:start + v.size]
    for i in range(v.size):
        vi = v[i] * momentum + grads[i]
        v[i] = vi
        params[i] -= vi * lr


def optimiser_step(kind, theta, grad, start, m, v, hyper, c1, c2, step):
    """Step `step` of the epoch of an ADAM or SGD optimiser (nothing for NO_OPTIMISER),
    whose parameters are theta[start:start + v.size]."""
    if kind == ADAM:
        adam_step(theta, grad, start, m, v, hyper, c1[step], c2[step])
    elif kind == SGD:
        sgd_step(theta, grad, start, v, hyper)


def prox_tv2(layer_int, layer_float, theta, threshold, work, min_coefficient,
             max_magnitude):
    """prox_tv2 on every spline layer, in place; False (theta then partly changed) when a
    new coefficient is not 0 or of magnitude in [min_coefficient, max_magnitude] (the
    range that LinearSpline accepts).  work: at least 2 K floats."""
    for l in range(layer_int.shape[0]):
        if layer_int[l, KIND] != SPLINE:
            continue
        channels, size, p = layer_int[l, N_IN], layer_int[l, SIZE], layer_int[l, PARAM]
        step = layer_float[l, STEP]
        for c in range(channels):
            base = p + c * size
            c0 = theta[base]
            s0 = (theta[base + 1] - theta[base]) / step
            for j in range(size - 2):          # a_j = diff(diff(c)) / T, soft-thresholded
                a = ((theta[base + j + 2] - theta[base + j + 1])
                     - (theta[base + j + 1] - theta[base + j])) / step
                work[j] = sign(a) * max(abs(a) - threshold, 0.0)
            cumulative = 0.0                   # cumsum(a_hat)[i - 1]
            rebuilt = 0.0                      # cumsum([0, T slopes])[k]
            work[size] = c0 + 0.0
            for k in range(1, size):           # slope_i = s0 + [0, cumsum(a_hat)][i]
                i = k - 1
                if i == 0:
                    slope = s0 + 0.0
                else:
                    cumulative = work[0] if i == 1 else cumulative + work[i - 1]
                    slope = s0 + cumulative
                rebuilt += step * slope
                work[size + k] = c0 + rebuilt
            for k in range(size):
                value = work[size + k]
                size_k = abs(value)
                if not (size_k <= max_magnitude and (size_k >= min_coefficient
                                                     or value == 0.0)):
                    return False
                theta[base + k] = value
    return True


def copy_state(theta, m0, v0, m1, v1, saved, restore):
    """Save (restore False) or restore theta and the optimisers' moments into / from
    saved, in that order (a step whose prox the NumPy loop would refuse is undone)."""
    at = 0
    for a in (theta, m0, v0, m1, v1):
        for i in range(a.size):
            if restore:
                a[i] = saved[at + i]
            else:
                saved[at + i] = a[i]
        at += a.size


def train_epoch(dgemm, dgemv, ddot, numpy_exp, x, y_real, y_label, order, batch_size, loss,
                layer_int, layer_float, theta, grad, h, h_off, g, g_next, intercepts, slopes,
                sums, work, reg_mode, reg_factor, kind0, start0, m0, v0, hyper0, c1_0, c2_0,
                kind1, start1, m1, v1, hyper1, c1_1, c2_1, prox, prox_threshold, saved,
                min_coefficient, max_magnitude, convention, bce_epsilon, points):
    """The minibatch steps of one epoch, the batches order[start:start + batch_size].

    Returns (status, steps): DONE and the number of batches, or why it stopped and the index
    of the step not taken (the state is that before it).  Optimiser i (kind0, kind1: ADAM,
    SGD or NO_OPTIMISER) updates theta[start_i:start_i + v_i.size] with its moments (m_i,
    v_i; SGD: v_i), hyper-parameters hyper_i and, for Adam, the bias corrections c1_i[s],
    c2_i[s] of step s.
    """
    n_samples, n_in = order.size, x.shape[1]
    layers = layer_int.shape[0]
    out_at, width = h_off[layers], layer_int[layers - 1, N_OUT]
    step = 0
    for start in range(0, n_samples, batch_size):
        rows = min(batch_size, n_samples - start)
        batch = order[start:start + rows]
        for r in range(rows):
            for k in range(n_in):
                h[h_off[0] + r * n_in + k] = x[batch[r], k]
        for l in range(layers):
            if layer_int[l, KIND] == SPLINE:
                spline_tables(theta, layer_int[l, PARAM], layer_int[l, N_IN],
                              layer_int[l, SIZE], layer_float[l, STEP], intercepts, slopes,
                              layer_int[l, TABLE])
        forward(dgemm, dgemv, ddot, layer_int, layer_float, theta, intercepts, slopes, h,
                h_off, rows)
        for i in range(rows * width):
            if not abs(h[out_at + i]) < np.inf:
                return NONFINITE_OUTPUT, step
        loss_gradient(numpy_exp, loss, convention, bce_epsilon, h, out_at, rows, width, y_real,
                      y_label, batch, g, g_next)
        backward(dgemm, dgemv, ddot, layer_int, layer_float, theta, slopes, h, h_off, rows,
                 g, g_next, grad, sums)
        if not penalty_gradients(layer_int, layer_float, theta, intercepts, slopes, grad,
                                 reg_mode, reg_factor, work, sums, convention, points):
            return NONFINITE_BV2, step
        if prox:
            copy_state(theta, m0, v0, m1, v1, saved, bool(False))
        optimiser_step(kind0, theta, grad, start0, m0, v0, hyper0, c1_0, c2_0, int(step))
        optimiser_step(kind1, theta, grad, start1, m1, v1, hyper1, c1_1, c2_1, int(step))
        if prox and not prox_tv2(layer_int, layer_float, theta, prox_threshold, work,
                                 min_coefficient, max_magnitude):
            copy_state(theta, m0, v0, m1, v1, saved, bool(True))
            return PROX_OUT_OF_RANGE, step
        step += 1
    return DONE, step
