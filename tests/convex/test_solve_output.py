"""The text `solve` prints on its other paths (issue 21 item 16): the optimum being a cheap
feasible point, merged points, a result not certified.  Whether the certificate holds
Python or NumPy numbers, the text is the same and holds numbers, never `np.float64(` or
`np.int64(`; tests/test_printed_numbers.py covers the solver's own optimum."""
import numpy as np
import pytest

from reference.cli import main
from reference.convex import _solve as convex
from reference.exceptions import SolveNotCertified
from reference.io._model_file import save_model
from reference.testing import assert_numbers_only, numpy_typed, single_neuron


def merged_data():
    """single_neuron(50) plus a point 1e-10 from x[0] with a target 1 above it."""
    _, x, y = single_neuron(m=50)
    return np.concatenate([x, x[:1] + 1e-10]), np.concatenate([y, y[:1] + 1.0])


PATHS = {     # name: (samples or data, extra arguments, exit status, text expected)
    "cheap optimum": (200, ["--lam", "1e12", "--reg", "bv2"], 0, "the optimum is the zero"),
    "merged points": (merged_data, ["--lam", "1e-3"], 0, "merged points per neuron [1]"),
    "not certified": (2000, ["--lam", "1e-12", "--time-limit", "0.001"], 3,
                      "NOT CERTIFIED"),
}


def converted(solve_layer, convert):
    """solve_layer with every certificate, returned or carried by SolveNotCertified,
    passed through convert."""
    def solve(*args, **kwargs):
        try:
            new, cert = solve_layer(*args, **kwargs)
        except SolveNotCertified as exc:
            raise SolveNotCertified(str(exc), exc.model, convert(exc.certificate)) from None
        return new, convert(cert)
    return solve


@pytest.mark.parametrize("name", list(PATHS))
def test_solve_prints_numbers_on_every_path(name, tmp_path, monkeypatch, capsys):
    data, extra, status, expected = PATHS[name]
    net, x, y = single_neuron(m=data) if isinstance(data, int) else (single_neuron(5)[0],
                                                                      *data())
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    argv = ["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--layer",
            "1", "--out", str(tmp_path / "s.npz"), "--quiet", *extra]
    real, memo, texts = convex.solve_layer, {}, []

    def once(*args, **kwargs):              # both runs print the same result (times too)
        if "result" not in memo:
            try:
                memo["result"] = real(*args, **kwargs)
            except SolveNotCertified as exc:
                memo["result"] = exc
        if isinstance(memo["result"], SolveNotCertified):
            raise memo["result"]
        return memo["result"]
    for convert in (lambda cert: cert, numpy_typed):
        with monkeypatch.context() as m:
            m.setattr(convex, "solve_layer", converted(once, convert))
            assert main(argv) == status
        texts.append(capsys.readouterr().out)
    assert expected in texts[0]
    assert texts[1] == texts[0]
    assert_numbers_only(texts[1])
