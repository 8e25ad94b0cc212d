"""
Decision boundaries
===================

Circle and s_shape data sets, a spline network against ReLU, PReLU and LeakyReLU networks
of the same width (4), with the training points and the true boundary. Two spline neurons
already draw the circle (x1^2 + x2^2 is a sum of two ridge functions); ReLU-family neurons
of the same number cannot.
"""
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from figures.run import generate

results = os.environ.get("DSREF_GALLERY_RESULTS") or tempfile.mkdtemp()
out = Path(tempfile.mkdtemp())
report = generate("quick", out=out, results=results, only=["decision_boundaries"],
                  workers=0, progress=False)
print(report["decision_boundaries"]["summary"])

# %%
image = plt.imread(out / "decision_boundaries.png")
fig = plt.figure(figsize=(image.shape[1] / 110, image.shape[0] / 110))
fig.figimage(image)
