"""The project's ECLipsE-Fast against the published package eclipse-nn 0.1.7 (Xu and
Sivaranjani's `LipConstEstimator`, an optional peer: the extra [eclipse]; skipped when it or
torch is missing).  Compared only where the package is valid and computes the same thing:
ReLU networks, slopes [0, 1], where its rule (p = alpha beta dropped) and the project's
(intervals widened to [min(alpha, 0), max(beta, 0)]) coincide.  Its `estimate('ECLipsE')` is
not compared: with SCS it falls back to ECLipsE-Fast for the whole network on almost every
network, and for alpha < 0 < beta it is not a valid bound (notes A.7)."""
import numpy as np
import pytest

from reference.lipschitz import eclipse_fast
from reference.nn import build_mlp

pytestmark = pytest.mark.eclipse

NETWORKS = {"2-10-30-20-2": ([2, 10, 30, 20, 2], 0), "10-64x4-10": ([10] + [64] * 4 + [10], 0),
            "10-50x20-10": ([10] + [50] * 20 + [10], 0), "3-1-5-2": ([3, 1, 5, 2], 4),
            "784-30-30-10": ([784, 30, 30, 10], 1), "4-20x4-1": ([4] + [20] * 4 + [1], 2)}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fast_equals_the_package(name):
    torch = pytest.importorskip("torch")
    estimator = pytest.importorskip("eclipse_nn.LipConstEstimator")
    widths, seed = NETWORKS[name]
    net = build_mlp(widths, activation="relu", rng=seed)
    weights = [layer.params["weight"] for layer in net.layers if layer.kind == "dense"]
    package = float(estimator.LipConstEstimator(
        weights=[torch.tensor(w) for w in weights]).estimate(method="ECLipsE_Fast"))
    ours = eclipse_fast(net)
    assert ours["value"] == pytest.approx(package, rel=1e-9, abs=0)
    assert np.isfinite(ours["rounding_bound"])
