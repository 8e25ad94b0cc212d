"""The JSON record each benchmark writes (benchmarks/bench_*.py, run as scripts)."""
from __future__ import annotations

from pathlib import Path

from reference.io._files import dumps_json, write_text


def write_record(record: dict, out) -> Path:
    """`record` as indented JSON at `out` (its directory created if missing), atomically
    (reference.io.write_text); NumPy values as numbers, NaN and inf as null
    (reference.io._files.jsonable).  Errors name --out."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, dumps_json(record, indent=2), "--out")
