"""Sphinx configuration of the deepspline-reference documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the checkout
(``pip install -e ".[docs]"`` first).  Nothing is downloaded: MathJax is served from the
``sphinx-mathjax-offline`` package, and there is no intersphinx.

The API reference is generated from the package itself: :func:`write_api_pages` writes one
page per subpackage listing the names of its ``__all__`` in an ``autosummary`` table, and
autosummary writes one page per name.  A name added to (or removed from) a subpackage's
``__all__`` appears in (or leaves) the docs with no edit here.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))          # the checkout's `reference`, `figures`, `theory_checks`
sys.path.insert(0, str(DOCS))          # docs/_ext helpers

import reference  # noqa: E402

project = "deepspline-reference"
author = "the deepspline-reference authors"
copyright = "2026, " + author
release = reference.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
    "sphinx_copybutton",
    "sphinx-mathjax-offline",
    "_ext.plain_docstrings",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = ["_templates"]

# Every cross-reference must resolve: a broken one fails the -W build.
nitpicky = True
# Names outside this project: there is no intersphinx (the build is offline), so references
# to NumPy, the standard library and type-hint spellings cannot resolve and are not checked.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|cvxpy|matplotlib|dask|distributed|pathlib|collections|"
               r"typing|argparse|os|io|json|enum|dataclasses|contextlib|abc)(\..*)?"),
    (r"py:.*", r"(object|int|float|str|bool|dict|list|tuple|set|frozenset|bytes|None|"
               r"callable|Callable|Any|Mapping|Sequence|Iterable|Iterator|Path|ndarray|"
               r"array_like|array-like|optional|default|of|or|shape|float64|"
               r"Exception|RuntimeError|ValueError|TypeError|KeyError|OSError|"
               r"NamedTuple|type)"),
    # the private base of the result types (BoundResult, LadderResult, SolveCertificate):
    # a dict with attribute access, documented on each public subclass
    (r"py:class", r"reference\._result\.Result"),
]

# -- autodoc / autosummary / numpydoc ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"            # the numpydoc Parameters section states the types
numpydoc_show_class_members = False   # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()    # validation runs in tests/test_docstrings.py
numpydoc_xref_param_type = False

# The public subpackages, from the package itself: reference.__all__ lists them (testing and
# cli are entry points for tests and the shell, documented too).
EXTRA_MODULES = ("testing", "cli")
API_DIR = DOCS / "api" / "_sub"


def public_modules() -> list:
    """The public modules of the package, in the order of ``reference.__all__``."""
    names = [n for n in reference.__all__ if n != "__version__"]
    names += [n for n in EXTRA_MODULES if n not in names]
    return [n for n in names if importlib.util.find_spec(f"reference.{n}") is not None]


def _title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}\n"


def write_api_pages() -> list:
    """Write ``api/_sub/<module>.rst`` for each public module: its docstring and an
    autosummary table of its ``__all__`` (one generated page per name).  Returns the module
    names; files are rewritten only when their text changes (Sphinx rebuilds what changed)."""
    API_DIR.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    for name in modules:
        module = importlib.import_module(f"reference.{name}")
        public = list(getattr(module, "__all__", []))
        lines = [_title(f"reference.{name}"),
                 f".. automodule:: reference.{name}\n   :no-members:\n",
                 f".. currentmodule:: reference.{name}\n"]
        if public:
            lines += [".. autosummary::", "   :toctree: ../generated",
                      "   :template: autosummary/public_name.rst", "   :nosignatures:", ""]
            lines += [f"   {n}" for n in public]
        else:
            lines += ["This module lists no public names in ``__all__``."]
        text = "\n".join(lines) + "\n"
        path = API_DIR / f"{name}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for stale in API_DIR.glob("*.rst"):
        if stale.stem not in modules:
            stale.unlink()
    return modules


API_MODULES = write_api_pages()

# -- sphinx-gallery -----------------------------------------------------------------------
# The gallery's sweeps share one results directory per build (runs are cached within a
# build, never across builds: every build regenerates the figures from fresh runs).
os.environ.setdefault("DSREF_GALLERY_RESULTS", tempfile.mkdtemp(prefix="dsref-gallery-"))
os.environ.setdefault("MPLBACKEND", "Agg")
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|_common\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
    "plot_gallery": "True",
    "reference_url": {"reference": None},
    "doc_module": ("reference",),
    "backreferences_dir": "api/generated/backrefs",
    "min_reported_time": 1,
}

# -- MyST (the user guide is Markdown: the README's text moved here) ----------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4
suppress_warnings = ["myst.header"]

# -- doctest --------------------------------------------------------------------------------
doctest_global_setup = "import numpy as np"

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"deepspline-reference {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True


def setup(app):
    from _ext import benchmark_plots  # noqa: PLC0415
    app.connect("builder-inited", benchmark_plots.make_plots)
