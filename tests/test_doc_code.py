"""The Python blocks of the README and of the docs' Python API page run as printed, in order,
from an empty directory (they are the first code a new user copies), and print what their
``# prints: ...`` comments say."""
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/user_guide/python_api.md"]


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_pages_have_python_blocks():
    for page in PAGES:
        assert python_blocks((ROOT / page).read_text()), page


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run_as_printed(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_page__"}
    blocks = python_blocks((ROOT / page).read_text())
    for block in blocks:
        exec(compile(block, f"{page} (python block)", "exec"), namespace)
    assert os.getcwd() == str(tmp_path)
    promised = [line for block in blocks for line in re.findall(r"# prints: (.*)$", block, re.M)]
    assert promised, f"{page}: no '# prints:' comment to check"
    assert capsys.readouterr().out.splitlines() == promised
