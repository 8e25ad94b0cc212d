"""
Error rate, knots and Lipschitz bound against lambda
====================================================

The three plots of DeepSplines' ``plot_sparsity_error_rate_lipschitz_bound_vs_lmbda.py``:
test error rate, number of knots (after ``sparsify auto``) and the paper's Lipschitz bound
(Theorem 1, BV2 form, p = 2) of spline networks trained with TV2 and BV2 regularisation,
against lambda; ReLU, PReLU and LeakyReLU networks of the same width as horizontal lines.

The figures come from the project's figure maker (``python -m figures --quick --only
lambda_error_rate,lambda_sparsity,lambda_lipschitz``), which runs the sweep it needs through
the sweep engine, caches every run as a checked record, and writes each figure with the CSV
of the data behind it. ``workers=0`` runs the sweep in this process; ``workers=N`` or
``scheduler=`` sends it to a Dask cluster.
"""
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from figures.run import generate

results = os.environ.get("DSREF_GALLERY_RESULTS") or tempfile.mkdtemp()
out = Path(tempfile.mkdtemp())
names = ["lambda_error_rate", "lambda_sparsity", "lambda_lipschitz"]
report = generate("quick", out=out, results=results, only=names, workers=0, progress=False)

# %%
# Each figure comes with a one-line summary of the numbers that matter, and its data as CSV
# (one row per run and plotted value, with the key of the run's record).
for name in names:
    print(f"{name}: {report[name]['summary']}")
print((out / "lambda_error_rate.csv").read_text().splitlines()[:3])

# %%
# The figures as written (PNG; a PDF beside each).
for name in names:
    image = plt.imread(out / f"{name}.png")
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / 110, height / 110))
    fig.figimage(image)
