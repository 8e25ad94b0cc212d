"""The paper's experiments as figures: `python -m figures [--quick] [--only NAME] ...`.

Thin scripts over the package: the runs go through reference.training.run_sweep (cached,
resumable, on Dask), the plots read the run records; no mathematics lives here."""
