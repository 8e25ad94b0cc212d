"""Optional cross-checks against PyTorch DeepSplines (pytest -m torch); need torch and
deepsplines installed (pip install torch==2.13.0; pip install --no-deps deepsplines)."""
import numpy as np
import pytest

from reference.nn._linear_spline import LinearSpline

pytestmark = pytest.mark.torch


def test_forward_backward_match_deepbspline():
    torch = pytest.importorskip("torch")
    ds_modules = pytest.importorskip("deepsplines.ds_modules")
    act = ds_modules.DeepBSpline("fc", 6, size=11, range_=2.0, init="leaky_relu").double()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        act.coefficients_vect.copy_(torch.from_numpy(rng.normal(size=6 * 11)))
    coefficients = act.coefficients_vect.detach().numpy().reshape(6, 11).copy()
    # DeepSplines keeps its grid step in a float32 tensor even after .double(): use that
    # exact value (0.4 in float32 = 0.4000000059604645) so both evaluate the same spline.
    step = float(act.grid.item())
    ours = LinearSpline(coefficients, -(11 // 2) * step, step)
    x = rng.uniform(-5, 5, (400, 6))
    g = rng.normal(size=x.shape)
    xt = torch.from_numpy(x).requires_grad_()
    y = act(xt)
    y.backward(torch.from_numpy(g))
    # Inside the grid both agree to round-off.  Outside, DeepSplines forms the offsets
    # grid * (size // 2) of its linear extrapolation in float32, so there the agreement is
    # at float32 level (a DeepSplines precision limit, not ours: see test_spline.py for
    # our extrapolation against an independent evaluation).
    inside = np.abs(x) <= (11 // 2) * step
    theirs = y.detach().numpy()
    np.testing.assert_allclose(ours(x)[inside], theirs[inside], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours(x), theirs, rtol=1e-6, atol=1e-6)
    grad_x, grad_c = ours.backward(x, g)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_c.ravel(), act.coefficients_vect.grad.numpy(),
                               rtol=1e-6, atol=1e-6)
    x_in = rng.uniform(-1.9, 1.9, (400, 6))
    act.zero_grad()
    act(torch.from_numpy(x_in)).backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.backward(x_in, g)[1].ravel(),
                               act.coefficients_vect.grad.numpy(), rtol=1e-11, atol=1e-11)
