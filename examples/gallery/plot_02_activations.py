"""
Learned activations
===================

The learned activations of both spline neurons of the circle network (TV2, seed 0) at the
smallest and the largest lambda of the profile, knots marked (a knot is a slope jump above
the stated tolerance, after ``sparsify auto``). Larger lambda, fewer knots.

The runs are those of the lambda sweep (cached by the previous example when the gallery is
built in one go; recomputed otherwise).
"""
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from figures.run import generate

results = os.environ.get("DSREF_GALLERY_RESULTS") or tempfile.mkdtemp()
out = Path(tempfile.mkdtemp())
report = generate("quick", out=out, results=results, only=["activations"], workers=0,
                  progress=False)
print(report["activations"]["summary"])

# %%
# The knots of one trained spline, read from the model with the public API.
import json

from reference.io import load_model

record_dir = Path(results) / "records"
records = [json.loads(p.read_text()) for p in sorted(record_dir.glob("*.json"))]
spline_runs = [r for r in records if r["run_config"]["activation"] == "spline"
               and r["run_config"]["dataset"] == "circle" and r.get("status") == "ok"]
net = load_model(Path(results) / spline_runs[0]["model"])
spline = net.layers[1].spline
knots, tolerance = spline.knots()[:2]
print(f"lambda {spline_runs[0]['run_config']['lam']:g}: knots per neuron "
      f"{[len(k) for k in knots]}, tolerance per neuron {[f'{t:.2g}' for t in tolerance]}")

# %%
image = plt.imread(out / "activations.png")
fig = plt.figure(figsize=(image.shape[1] / 110, image.shape[0] / 110))
fig.figimage(image)
