"""`python -m figures --quick`: every figure written, its CSV equal to the run records, and
the trends the paper claims (knots and the Lipschitz bound fall as lambda grows)."""
import csv
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from figures import make
from figures.__main__ import main as figures_main
from figures.make import FIGURES

CSV_COLUMNS = {
    "lambda_error_rate": {"dataset", "activation", "reg", "lam", "seed", "key", "value"},
    "lambda_sparsity": {"dataset", "activation", "reg", "lam", "seed", "key", "value",
                        "curve"},
    "lambda_lipschitz": {"dataset", "activation", "reg", "lam", "seed", "key", "value"},
    "lambda_lipschitz_ladder": {"dataset", "reg", "lam", "seed", "key", "value", "method"},
    "activations": {"lam", "key", "layer", "neuron", "x", "sigma", "knot"},
    "decision_boundaries": {"dataset", "activation", "width", "key", "test_accuracy"},
    "representer": {"neuron", "z", "optimum", "trained", "knot"},
    "width_table": {"dataset", "activation", "width", "seeds", "test_accuracy_mean",
                    "test_accuracy_std"},
}


@pytest.fixture
def quick(quick_figures):
    return quick_figures


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def record(out, key):
    return json.loads((out / "results" / "records" / f"{key}.json").read_text())


def test_every_figure_is_written_with_its_data(quick):
    out, report = quick
    assert set(report) == set(FIGURES)
    for name in FIGURES:
        assert "error" not in report[name], report[name]
        for ext in ("png", "pdf", "csv"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000 or ext == "csv"
        rows = read_csv(out / f"{name}.csv")
        assert rows and CSV_COLUMNS[name] <= set(rows[0]), name
    index = (out / "index.md").read_text()
    for name in FIGURES:
        assert f"## {name}" in index and f"--only {name}" in index
    assert (out / "width_table.md").read_text().startswith("| data set |")


@pytest.mark.parametrize("name, value", [
    ("lambda_error_rate", lambda r, row: 100 * (1 - r["test_accuracy"])),
    ("lambda_sparsity", lambda r, row: r["sparsify"]["knots_before"]
     if row["curve"].startswith("TV2, Adam") else sum(r["knots"])),
    ("lambda_lipschitz", lambda r, row: r["lipschitz_bound"]),
    ("lambda_lipschitz_ladder", lambda r, row: r["ladder"]["2"][row["method"]]["value"]),
])
def test_csv_values_equal_the_run_records(quick, name, value):
    out, _ = quick
    for row in read_csv(out / f"{name}.csv"):
        expected = value(record(out, row["key"]), row)
        assert float(row["value"]) == pytest.approx(expected, rel=1e-12, abs=0), row


def test_width_table_is_the_mean_of_the_records(quick):
    out, _ = quick
    records = [json.loads(p.read_text()) for p in (out / "results" / "records").glob("*.json")]
    for row in read_csv(out / "width_table.csv"):
        accs = [r["test_accuracy"] for r in records
                if r["dataset"] == row["dataset"] and r["activation"] == row["activation"]
                and r["hidden"] == [int(row["width"])]
                and (r["activation"] != "spline"
                     or (r["run_config"]["lam"] == 1e-4 and r["run_config"]["reg"] == "tv2"
                         and not r["run_config"]["prox"]))]
        assert len(accs) == int(row["seeds"])
        assert float(row["test_accuracy_mean"]) == pytest.approx(np.mean(accs), rel=1e-12)


@pytest.mark.parametrize("name", ["lambda_sparsity", "lambda_lipschitz"])
def test_knots_and_bound_fall_as_lambda_grows(quick, name):
    """The paper's trends on the quick sweep: Spearman correlation of the mean over seeds
    with lambda below -0.5, for each data set and regulariser."""
    out, _ = quick
    rows = [r for r in read_csv(out / f"{name}.csv") if r["activation"] == "spline"]
    for dataset in ("circle", "s_shape"):
        for reg in ("tv2", "bv2"):
            sel = [r for r in rows if r["dataset"] == dataset and r["curve"] == reg]
            lams = sorted({float(r["lam"]) for r in sel})
            means = [np.mean([float(r["value"]) for r in sel if float(r["lam"]) == lam])
                     for lam in lams]
            rho = spearmanr(lams, means).statistic
            assert rho < -0.5, (name, dataset, reg, lams, means, rho)


def test_a_failing_figure_is_named_and_the_others_are_written(quick, monkeypatch, capsys):
    out, _ = quick

    def broken(sweeps, profile, out):
        raise RuntimeError("deliberately broken")
    monkeypatch.setitem(FIGURES, "activations", (broken, ("lambda",)))
    (out / "width_table.png").unlink()
    status = figures_main(["--quick", "--out", str(out), "--workers", "0",
                           "--only", "activations,width_table"])
    assert status == 1
    err = capsys.readouterr().err
    assert "figure activations could not be made: RuntimeError: deliberately broken" in err
    assert (out / "width_table.png").stat().st_size > 1000          # made again from cache
    assert "FAILED: RuntimeError: deliberately broken" in (out / "index.md").read_text()


def test_unknown_figure_name(capsys, tmp_path):
    assert figures_main(["--quick", "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "--only: unknown figures ['nope']" in capsys.readouterr().err


def test_figures_fail_on_failed_runs():
    with pytest.raises(RuntimeError, match="1 run.s. failed, e.g. abc: boom"):
        make.ok_records([{"key": "abc", "status": "failed", "error": "boom"}])


@pytest.mark.parametrize("argv, name", [(["--workers", "-1"], "--workers"),
                                        (["--scheduler", "foo"], "--scheduler")])
def test_bad_engine_arguments_create_nothing(argv, name, tmp_path, capsys):
    out = tmp_path / "figs"
    assert figures_main(["--quick", "--out", str(out), *argv]) == 2
    assert name in capsys.readouterr().err and not out.exists()
