"""
The Lipschitz ladder on a small network
=======================================

Every method of the ladder on one network, in the l2 norm: a lower bound (sampled points and
a local search, over the box), the exact value (2 inputs: the linear regions over the box),
LipSDP-neuron and LipSDP-layer (certified in NumPy), the layer-wise bound and the paper's
Theorem 1 (exact slopes and BV2 norms). The order
``lower <= exact <= layerwise <= theorem1 <= theorem1_bv2`` and ``lower <= lipsdp`` always
holds; how far apart the rungs are is what the figure shows.
"""
import matplotlib.pyplot as plt
import numpy as np

from reference import lipschitz, nn

rng = np.random.default_rng(0)
net = nn.build_mlp([2, 8, 8, 1], "spline", rng=0)
for layer in net.layers:                      # random spline coefficients, not just the init
    if isinstance(layer, nn.SplineActivation):
        coefficients = layer.params["coefficients"]
        coefficients[:] = np.cumsum(rng.normal(scale=0.3, size=coefficients.shape), axis=1)

results = lipschitz.ladder(net, p=2, box=1.0)
for method, result in results.items():
    note = result.get("reason") or result.get("kind")
    print(f"{method:15} {result['value'] if result['value'] is not None else 'n/a':>12}"
          f"  {result['seconds']:6.2f} s  {note}")

# %%
# The values against the best lower bound (1 = tight).
methods = [m for m in results if results[m]["value"] is not None]
values = np.array([results[m]["value"] for m in methods])
best_lower = results["lower"]["value"]
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
ax.barh(methods, values / best_lower, color="tab:blue")
ax.axvline(1.0, color="k", lw=0.8)
ax.set_xscale("log")
ax.invert_yaxis()
ax.set_xlabel("value / best lower bound (log scale)")
ax.set_title("Lipschitz ladder, spline network 2-8-8-1, p = 2, box [-1, 1]^2")
