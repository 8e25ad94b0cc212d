"""
The representer theorem
=======================

The spline layer of a circle network trained with TV2 against the exact continuous-domain
optimum of the same layer with every other weight fixed (``reference.convex.solve_layer``
on the data grid, logistic loss). The optimum's knots all lie at data points, as the
representer theorem says, and its objective is certified: the solver's status and gap,
re-evaluated in NumPy.
"""
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from figures.run import generate

results = os.environ.get("DSREF_GALLERY_RESULTS") or tempfile.mkdtemp()
out = Path(tempfile.mkdtemp())
report = generate("quick", out=out, results=results, only=["representer"], workers=0,
                  progress=False)
print(report["representer"]["summary"])

# %%
image = plt.imread(out / "representer.png")
fig = plt.figure(figsize=(image.shape[1] / 110, image.shape[0] / 110))
fig.figimage(image)

# %%
# The reduction itself, on any network: every spline replaced by its interpolant through
# the pre-activations of the data keeps the outputs at the data and does not increase TV2
# or Lip (``reference.convex.reduce_network``). Here on a network with random spline
# coefficients.
import numpy as np

from reference import convex, nn

rng = np.random.default_rng(1)
net = nn.build_mlp([2, 3, 1], "spline", rng=0)
coefficients = net.layers[1].params["coefficients"]
coefficients[:] = rng.normal(size=coefficients.shape)
x = rng.uniform(-1, 1, (40, 2))
reduced, report = convex.reduce_network(net, x, reg="tv2")
print(f"largest change of an output at the data: {report['max_output_change']:.2g}")
print("neuron  knots before -> after   TV2 before -> after   Lip before -> after")
for row in report["neurons"]:
    print(f"{row['neuron']:>6}  {row['knots_before']:>12} -> {row['knots_after']:<5}"
          f"  {row['tv2_before']:>10.4g} -> {row['tv2_after']:<8.4g}"
          f"  {row['lipschitz_before']:>10.4g} -> {row['lipschitz_after']:.4g}")
