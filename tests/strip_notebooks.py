"""Strips outputs and execution counts from notebooks: `python tests/strip_notebooks.py NB...`."""

import sys

import nbformat


def main(paths: list[str]) -> None:
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, path)


if __name__ == "__main__":   # pytest's --doctest-modules imports this file
    main(sys.argv[1:])
