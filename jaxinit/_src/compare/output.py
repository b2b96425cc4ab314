"""The files of `jaxinit compare`: ``results.json``, the PNG plots and ``report.html``.

Everything is written into a fresh temporary folder next to ``--out`` and moved at the
end: renamed to ``--out`` when that does not exist yet, else moved into it file by file
with :func:`os.replace`, so ``--out`` never holds a half-written file (and nothing at
all when the comparison fails).
"""

from __future__ import annotations

import base64
import html
import os
import pathlib
import shutil
import tempfile
import textwrap
from typing import Any

import numpy as np

from jaxinit._src.compare.results import CompareResult

PLOTS = ("loss_curves.png", "signal_std.png")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(result: CompareResult, path: pathlib.Path) -> pathlib.Path:
    """The training loss per scheme: the mean over the seeds (a line) and the mean ± std
    across the seeds (a band), each seed's curve first smoothed over 10 steps."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = 0.0
    for i, r in enumerate(result.runs):
        curves = np.asarray(r.curves, np.float64)
        smooth = np.stack([_moving_average(c, 10) for c in curves])
        mean = smooth.mean(0)
        std = smooth.std(0, ddof=1) if len(smooth) > 1 else np.zeros_like(mean)
        steps = np.arange(1, mean.size + 1)
        ax.plot(steps, mean, color=f"C{i}", lw=1.4, label=r.name)
        ax.fill_between(steps, mean - std, mean + std, color=f"C{i}", alpha=0.25, lw=0)
        tail = (mean + std)[mean.size // 20:]
        if np.isfinite(tail).any():
            top = max(top, float(np.nanmax(tail)))
    if top > 0:  # the first steps' spikes would flatten every curve
        ax.set_ylim(0, 1.1 * top)
    ax.set(title=f"training loss: mean ± std over {result.seeds} seeds (10-step mean)\n"
                 + textwrap.fill(result.description, 100), xlabel="step", ylabel="loss")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_signal(result: CompareResult, path: pathlib.Path) -> pathlib.Path:
    """Per scheme, the activation std and gradient std at each layer at initialization."""
    plt = _pyplot()
    fig, (ax_a, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(result.runs):
        # A std that underflowed to 0 has no place on a log axis: leave a gap.
        depth = np.arange(1, len(r.layers) + 1)
        acts, grads = np.asarray(r.activation_std), np.asarray(r.gradient_std)
        ax_a.semilogy(depth, np.where(acts > 0, acts, np.nan), color=f"C{i}", label=r.name)
        ax_g.semilogy(depth, np.where(grads > 0, grads, np.nan), color=f"C{i}", label=r.name)
    ax_a.set(title="activation std at initialization", xlabel="layer", ylabel="std")
    ax_g.set(title="gradient std at initialization", xlabel="layer")
    ax_a.legend(fontsize=8)
    fig.suptitle(textwrap.fill(result.description, 150), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values (fewer at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    i = np.arange(1, x.size + 1)
    lo = np.maximum(i - n, 0)
    return (c[i] - c[lo]) / (i - lo)


def report_html(result: CompareResult, images: dict[str, bytes]) -> str:
    """One self-contained page: the verdict, the table and the PNGs as ``data:`` URIs
    (no script, no stylesheet or font from the network)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in result.columns())
    body = "".join(
        f'<tr data-scheme="{esc(row[0])}">' + "".join(f"<td>{esc(v)}</td>" for v in row)
        + "</tr>" for row in result.rows()
    )
    figures = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode("ascii")}"><figcaption>{esc(name)}</figcaption>'
        "</figure>" for name, data in images.items()
    )
    settings = "".join(f"<li><code>{esc(k)}</code> = {esc(repr(v))}</li>"
                       for k, v in result.settings.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jaxinit compare</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 80em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>jaxinit compare</h1>
<p>{esc(result.description)}</p>
<p id="verdict"><strong>{esc(result.verdict_line())}</strong></p>
<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{figures}
<h2>Settings</h2><ul>{settings}</ul>
</body></html>
"""


def write_files(result: CompareResult, folder: pathlib.Path, *, plots: bool = True
                ) -> list[pathlib.Path]:
    """Writes ``results.json``, the plots (unless ``plots`` is False) and ``report.html``
    into ``folder``; returns the paths."""
    written = [folder / "results.json"]
    written[0].write_text(result.to_json_text())
    images: dict[str, bytes] = {}
    if plots and result.runs:
        for name, draw in (("loss_curves.png", plot_loss_curves),
                           ("signal_std.png", plot_signal)):
            path = draw(result, folder / name)
            images[name] = path.read_bytes()
            written.append(path)
    report = folder / "report.html"
    report.write_text(report_html(result, images), encoding="utf-8")
    written.append(report)
    return written


class Staging:
    """A temporary folder next to ``out``; :meth:`commit` moves its files into ``out``."""

    def __init__(self, out: pathlib.Path) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))

    def commit(self) -> list[pathlib.Path]:
        names = sorted(p.name for p in self.folder.iterdir())
        if not self.out.exists():  # the whole folder at once
            os.replace(self.folder, self.out)
            return [self.out / n for n in names]
        self.out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(self.folder / name, self.out / name)
        self.discard()
        return [self.out / n for n in names]

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write(result: CompareResult, out: pathlib.Path, *, plots: bool = True
          ) -> list[pathlib.Path]:
    """:func:`write_files` into a :class:`Staging` folder, then moved into ``out``."""
    staging = Staging(out)
    try:
        write_files(result, staging.folder, plots=plots)
        return staging.commit()
    finally:
        staging.discard()


