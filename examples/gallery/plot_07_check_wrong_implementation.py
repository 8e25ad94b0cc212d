"""
Grading a wrong implementation with ``oracle.check``
====================================================

A deliberately wrong implementation: it reads the last spline coefficient c_{K-1} as
c_{K-2} (an off-by-one at the right end of the grid, which flattens the last piece and the
right extrapolation), and divides TV2 by T/5 instead of T. ``reference.oracle.check``
grades its answers against the reference's, key by key, and says where it goes wrong: the
first layer whose output disagrees, the neuron, the sample, the knot interval, and a
constant factor in TV2.
"""
import numpy as np

from reference import nn, oracle

rng = np.random.default_rng(0)
net = nn.build_mlp([2, 2, 1], "spline", rng=0, size=21, range_=2.0)
coefficients = net.layers[1].params["coefficients"]
coefficients[:] = np.cumsum(rng.normal(scale=0.3, size=coefficients.shape), axis=1)
x = rng.uniform(-2.5, 2.5, (200, 2))

# %%
# "Their" answers: the reference's own code run on the damaged coefficients, with TV2
# scaled by 5.
wrong = nn.build_mlp([2, 2, 1], "spline", rng=0, size=21, range_=2.0)
for mine, theirs in zip(net.layers, wrong.layers):
    for name, array in mine.params.items():
        theirs.params[name][...] = array
wrong.layers[1].params["coefficients"][:, -1] = coefficients[:, -2]
theirs = oracle.reference_answers(wrong, x, layers=True, info=False)
theirs["tv2/1"] = 5 * net.layers[1].spline.tv2()

report = oracle.check(net, x, theirs)
print(report.format())

# %%
# The same report as data (``report.to_json()`` is what ``check --json`` writes): one row
# per key, and the localisation.
failing = [row for row in report.rows if row.result == "FAIL"]
print(f"{len(failing)} of {len(report.rows)} keys fail; passed = {report.passed}")
print("failing keys:", ", ".join(row.key for row in failing))
