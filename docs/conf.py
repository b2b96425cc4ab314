"""Sphinx configuration of the jaxinit documentation (``make docs``).

The API pages are generated from each public module's ``__all__`` at build time
(:func:`write_api_pages`), so a new public name gets its page without editing the docs.
The notebooks in ``notebooks/`` are executed by myst-nb at their test size and cached
under the build directory; the CLI's ``--help`` text is captured at build time too.
"""

import importlib
import os
import pathlib
import pkgutil
import subprocess
import sys
import types

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
BUILD = pathlib.Path(os.environ.get("JAXINIT_DOCS_BUILD", DOCS / "_build"))
GENERATED = DOCS / "_generated"
sys.path.insert(0, str(ROOT))

# The notebooks read their size from the environment (``ci``: the grid the test suite
# runs, minutes on 2 CPU cores; ``full`` is ``make notebooks``); the kernels inherit it.
os.environ.setdefault("JAXINIT_NOTEBOOK_SIZE", "ci")
# Figures are shown by the kernel's inline backend; a headless MPLBACKEND=Agg (as the test
# suite sets) would leave the pages without them.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

import jaxinit  # noqa: E402

project = "jaxinit"
author = "the jaxinit authors"
copyright = "2026, the jaxinit authors"
release = jaxinit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/mathjax, no network
]

html_theme = "furo"
html_title = f"jaxinit {release}"
exclude_patterns = ["_build", "_generated/*.txt", "notebooks/README.md", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# Markdown pages and notebooks (myst-nb); the notebooks are a link to ../notebooks.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_cache_path = str(BUILD / "jupyter_cache")
nb_execution_timeout = 900            # a hang guard: the slowest notebook takes about a minute
nb_execution_raise_on_error = True    # a failing cell fails the build
nb_execution_show_tb = True

# API pages: one autosummary page per public name, the Google-style docstrings by napoleon.
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Doctests: only the explicit ``{doctest}`` blocks of the pages (the library's docstring
# examples are run by pytest's --doctest-modules in the unit tests).
doctest_test_doctest_blocks = ""
# The examples write small files (a checkpoint, a tiny Hugging Face directory): in the build.
doctest_global_setup = (
    f"import os; os.makedirs({str(BUILD / 'doctest_cwd')!r}, exist_ok=True); "
    f"os.chdir({str(BUILD / 'doctest_cwd')!r})"
)


def _write(path: pathlib.Path, text: str) -> None:
    """Writes a generated source only when it changed, so a rebuild does not re-read it."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def public_modules() -> list[str]:
    """``jaxinit`` and its public submodules (no leading underscore, not ``__main__``)."""
    submodules = sorted(f"jaxinit.{m.name}" for m in pkgutil.iter_modules(jaxinit.__path__)
                        if not m.name.startswith("_"))
    return ["jaxinit", *submodules]


def write_api_pages() -> None:
    """Writes ``api/<module>.rst``: the module's docstring and an autosummary of its __all__."""
    api = DOCS / "api"
    api.mkdir(exist_ok=True)
    pages, stubs = [], set()
    for name in public_modules():
        module = importlib.import_module(name)
        names = sorted(module.__all__, key=str.lower)
        # A public submodule re-exported in __all__ has its own module page, linked here.
        submodules = [n for n in names if isinstance(getattr(module, n), types.ModuleType)]
        title = f"``{name}``"
        text = [
            title, "=" * len(title), "",
            f".. automodule:: {name}", "   :no-members:", "",
            f".. currentmodule:: {name}", "",
            *(["Submodules: " + ", ".join(f":doc:`{name}.{n}`" for n in submodules), ""]
              if submodules else []),
            ".. autosummary::", "   :toctree: generated", "   :nosignatures:", "",
            *(f"   {n}" for n in names if n not in submodules), "",
        ]
        stubs |= {f"{name}.{n}.rst" for n in names if n not in submodules}
        _write(api / f"{name}.rst", "\n".join(text))
        pages.append(name)
    # Stubs of names no longer public would be orphan pages: remove them.
    for stale in (api / "generated").glob("*.rst"):
        if stale.name not in stubs:
            stale.unlink()
    index = ["API reference", "=============", "",
             "Every public name of every public module, generated from its ``__all__``.", "",
             ".. toctree::", "   :maxdepth: 1", "", *(f"   {p}" for p in pages), ""]
    _write(api / "index.rst", "\n".join(index))


def write_cli_help() -> None:
    """Captures ``jaxinit --help`` and each subcommand's for the CLI page."""
    GENERATED.mkdir(exist_ok=True)
    for cmd in ([], ["compare"], ["diagnose"]):
        out = subprocess.run(
            [sys.executable, "-m", "jaxinit", *cmd, "--help"], cwd=ROOT, check=True,
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "90"},
        ).stdout
        _write(GENERATED / f"cli_{'_'.join(cmd) or 'main'}.txt", out)


write_api_pages()
write_cli_help()
