"""
The conformance suite round trip
================================

``reference.conformance.export`` writes a versioned suite of small golden cases (a model, its
inputs and the expected answers per case, and a manifest). Another implementation answers
each case with one ``NAME.npz``; ``reference.conformance.grade`` grades the answers. Here the
reference answers itself (``self_answers``, what ``conformance run DIR --self`` does), then
one answer is damaged the way a real bug would damage it, and the grade names the case, the
key and where it goes wrong.
"""
import tempfile
from pathlib import Path

import numpy as np

from reference import conformance

suite_dir = Path(tempfile.mkdtemp()) / "suite"
manifest = conformance.export(suite_dir)
print(f"{len(manifest['cases'])} cases, format {manifest['format']}")
for case in manifest["cases"][:5]:
    print(f"  {case['name']:28} {case['kind']:16} {', '.join(case['answer_keys'][:3])} ...")

# %%
# The round trip: answer every case with the reference's own answers and grade them.
suite = conformance.load_suite(suite_dir)
answers_dir = Path(tempfile.mkdtemp())
conformance.self_answers(suite, answers_dir)
report = conformance.grade(suite, answers_dir)
print(f"passed: {report.passed}; failed cases: {report.failed}")

# %%
# A bug: TV2 without the 1/T factor (the grid step here is 0.2, so TV2 is 1/5 of the truth).
with np.load(answers_dir / "tv2_bv2.npz") as archive:
    answers = dict(archive)
answers["tv2/1"] = answers["tv2/1"] * 0.2
np.savez(answers_dir / "tv2_bv2.npz", **answers)
report = conformance.grade(suite, answers_dir)
print(f"passed: {report.passed}; failed cases: {report.failed}")
print(report.format_table())
