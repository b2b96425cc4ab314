"""Runs notebooks at full size and writes the executed copies (with outputs and figures):
`python tests/run_notebooks.py OUT_DIR NB...` (what `make notebooks` does)."""

import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient


def main(out: str, paths: list[str]) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["JAXINIT_NOTEBOOK_SIZE"] = "full"
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    for path in map(pathlib.Path, paths):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": out}}).execute()
        nbformat.write(nb, pathlib.Path(out) / path.name)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s -> {out}/{path.name}")


if __name__ == "__main__":   # pytest's --doctest-modules imports this file
    main(sys.argv[1], sys.argv[2:])
