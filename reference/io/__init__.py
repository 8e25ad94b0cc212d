"""Files: the model file, safe (atomic) writes, the DeepSplines importer."""
from reference.io._deepsplines import (
    deepsplines_step,
    import_deepsplines,
)
from reference.io._files import (
    atomic_write,
    load_npz,
    write_npz,
    write_text,
)
from reference.io._model_file import (
    FORMAT,
    load_model,
    network_from_mat,
    save_model,
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
