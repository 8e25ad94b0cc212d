"""Files: the model file, safe (atomic) writes, the DeepSplines importer."""
from reference.io._model_file import (
    load_model,
    save_model,
    network_from_mat,
    FORMAT,
)
from reference.io._files import (
    atomic_write,
    write_text,
    write_npz,
    load_npz,
)
from reference.io._deepsplines import (
    import_deepsplines,
    deepsplines_step,
)

__all__ = [
    "load_model",
    "save_model",
    "network_from_mat",
    "FORMAT",
    "atomic_write",
    "write_text",
    "write_npz",
    "load_npz",
    "import_deepsplines",
    "deepsplines_step",
]
