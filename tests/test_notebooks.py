"""Executes every notebook in notebooks/ top to bottom (outputs are stored stripped).

The suite runs them at their test size (``JAXINIT_NOTEBOOK_SIZE=ci``: a notebook whose full
run takes minutes reads it and runs a smaller grid); each notebook ends with a cell that
asserts the claims its text makes, so a run checks the conclusions, not only that the code
executes. ``make notebooks`` runs them at full size, as the docs show them.
"""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# A hang guard, not a time budget: the slowest notebook at test size takes about a minute.
CELL_TIMEOUT_S = 900


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_every_notebook_checks_its_claims():
    for path in NOTEBOOKS:
        last = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"][-1]
        assert "assert " in last.source, f"{path.name}: the last code cell asserts nothing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAXINIT_NOTEBOOK_SIZE", "ci")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
