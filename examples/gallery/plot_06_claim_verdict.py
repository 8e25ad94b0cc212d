"""
A claim verdict with its witness
================================

Is Lip_2(f) <= C on the box [-1, 1]^2? ``reference.lipschitz.check_claim`` runs the ladder
from the cheapest method on and stops as soon as the answer is known: ``sound`` (a certified
upper bound at most C), ``unsound`` (a pair of points whose ratio exceeds C even after
subtracting its rounding bound: the witness) or ``undecided`` (the remaining interval).
The exit status of ``python -m reference lipschitz MODEL --claim C`` is 0, 1 or 3.
"""
import matplotlib.pyplot as plt
import numpy as np

from reference import lipschitz, nn

rng = np.random.default_rng(0)
net = nn.build_mlp([2, 6, 1], "spline", rng=0)
coefficients = net.layers[1].params["coefficients"]
coefficients[:] = np.cumsum(rng.normal(scale=0.3, size=coefficients.shape), axis=1)

exact = lipschitz.ladder(net, p=2, box=1.0, methods=("exact",))["exact"]["value"]
print(f"exact Lip_2 over the box: {exact:.6g}")
for claim in (0.9 * exact, 1.1 * exact):
    verdict = lipschitz.check_claim(net, claim, p=2, box=1.0)
    decided = verdict.decided_by
    print(f"claim {claim:.6g}: {verdict.verdict.upper()} (exit status {verdict.exit_status})"
          + (f", decided by {decided.method}" if decided is not None else ""))

# %%
# The witness of the unsound claim: two points of the box, their ratio re-evaluated with
# ``Network.forward``, and the rounding margin subtracted before comparing with the claim.
verdict = lipschitz.check_claim(net, 0.9 * exact, p=2, box=1.0)
witness = verdict.witness.to_dict()
for key in ("x", "x_pair", "ratio", "certified", "margin", "method"):
    print(f"{key:10} {witness[key]}")

# %%
# Where the witness lies: the norm of the gradient of f over the box, and the pair.
grid = np.linspace(-1, 1, 301)
g1, g2 = np.meshgrid(grid, grid, indexing="ij")
points = np.stack([g1.ravel(), g2.ravel()], axis=1)
step = 1e-6
gradient = np.stack([(net.forward(points + step * e) - net.forward(points - step * e))[:, 0]
                     / (2 * step) for e in np.eye(2)], axis=1)
fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
image = ax.pcolormesh(g1, g2, np.linalg.norm(gradient, axis=1).reshape(g1.shape),
                      shading="auto", cmap="viridis")
fig.colorbar(image, ax=ax, label="||grad f(x)||_2")
x, x_pair = np.array(witness["x"]), np.array(witness["x_pair"])
ax.plot(*x, "r*", ms=14, label="witness pair")
ax.plot(*x_pair, "w+", ms=10)
ax.legend(loc="upper right")
ax.set_title(f"claim {0.9 * exact:.4g}: UNSOUND, ratio {witness['ratio']:.6g}")
