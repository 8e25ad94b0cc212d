"""Training: optimisers and the loop, sparsification, one experiment and sweeps on Dask.

The loop (`train`, `TrainConfig`, `Adam`, `SGD`) minimises the objective of Aziznejad et al.
(IEEE Trans. Signal Process. 2020, arXiv:2001.06263), data term plus weight decay plus the
TV(2) or BV(2) regulariser of the splines (`objective`, `prox_tv2`); `sparsify_network` and
`sparsify_auto` remove knots after training.  One experiment is a `RunConfig` trained and
measured by `run` (or `run_training`), with the Lipschitz ladder of the result
(`lipschitz_ladder`); `expand` and `run_sweep` run many on Dask, `load_records`, `table`
and `format_table` summarise them.
"""
from reference.training._experiments import (
    RunConfig,
    lipschitz_ladder,
    run,
    run_training,
)
from reference.training._sweep import (
    dask_client,
    expand,
    format_table,
    load_records,
    run_sweep,
    table,
)
from reference.training._train import (
    SGD,
    Adam,
    TrainConfig,
    accuracy,
    objective,
    prox_tv2,
    sparsify_auto,
    sparsify_network,
    train,
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
