"""Training: optimisers and the loop, sparsification, one experiment (RunConfig) and sweeps on Dask."""
from reference.training._train import (
    TrainConfig,
    train,
    Adam,
    SGD,
    accuracy,
    objective,
    prox_tv2,
    sparsify_network,
    sparsify_auto,
)
from reference.training._experiments import (
    RunConfig,
    run,
    run_training,
    lipschitz_ladder,
)
from reference.training._sweep import (
    run_sweep,
    load_records,
    table,
    format_table,
    dask_client,
    expand,
)

__all__ = [
    "TrainConfig",
    "train",
    "Adam",
    "SGD",
    "accuracy",
    "objective",
    "prox_tv2",
    "sparsify_network",
    "sparsify_auto",
    "RunConfig",
    "run",
    "run_training",
    "lipschitz_ladder",
    "run_sweep",
    "load_records",
    "table",
    "format_table",
    "dask_client",
    "expand",
]
