"""Measuring and showing a ``shinyo sim`` run: rank correlation, result records, text
tables, JSON and PNG plots.

Plots need matplotlib, an optional extra (``pip install shinyo[plots]``); the
simulation itself never does, and says so instead of failing when it is
missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shinyo import ShinyoError

__all__ = [
    "Check", "Plot", "PlotsUnavailable", "Result", "SimError", "Table", "kendall_tau", "quantile",
    "render", "to_json_obj", "write_plots",
]


class SimError(ShinyoError):
    """A simulation was asked for something it cannot do (bad sizes, unknown scenario)."""


class PlotsUnavailable(SimError):
    """matplotlib is not installed: plots need ``pip install shinyo[plots]``."""


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences, in O(n log n) (Knight's method).

    Ties count as neither concordant nor discordant; with no untied pair the
    result is NaN.
    """
    n = len(xs)
    if n != len(ys):
        raise SimError("kendall_tau needs two sequences of one length")
    pairs = sorted(zip(xs, ys, strict=True))
    total = n * (n - 1) // 2

    def tied(values: Sequence[object]) -> int:
        count, run = 0, 1
        for i in range(1, len(values) + 1):
            if i < len(values) and values[i] == values[i - 1]:
                run += 1
            else:
                count += run * (run - 1) // 2
                run = 1
        return count

    tied_x = tied([x for x, _ in pairs])
    tied_xy = tied(pairs)
    ys_by_x = [y for _, y in pairs]
    swaps = 0
    width = 1
    while width < n:  # bottom-up merge sort, counting strict inversions
        merged: list[float] = []
        for lo in range(0, n, 2 * width):
            left, right = ys_by_x[lo:lo + width], ys_by_x[lo + width:lo + 2 * width]
            i = j = 0
            while i < len(left) and j < len(right):
                if right[j] < left[i]:
                    merged.append(right[j])
                    swaps += len(left) - i
                    j += 1
                else:
                    merged.append(left[i])
                    i += 1
            merged.extend(left[i:])
            merged.extend(right[j:])
        ys_by_x = merged
        width *= 2
    tied_y = tied(ys_by_x)
    den = math.sqrt((total - tied_x) * (total - tied_y))
    if not den:
        return math.nan
    return (total - tied_x - tied_y + tied_xy - 2 * swaps) / den


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by the nearest-rank rule (no interpolation)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        if any(len(row) != len(self.columns) for row in self.rows):
            raise SimError(f"table {self.title!r}: every row needs {len(self.columns)} cells")


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A target of issue 6, judged on this run."""

    target: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Plot:
    """The data of one figure: named series of (x, y) points."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[tuple[str, tuple[tuple[float, float], ...]], ...]
    logx: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_-]+", self.name):
            raise SimError(f"a plot name is a file name stem, not {self.name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What one scenario found, and which path fed the protocol core."""

    name: str
    title: str
    path: str
    tables: tuple[Table, ...]
    checks: tuple[Check, ...] = ()
    plots: tuple[Plot, ...] = ()
    seconds: float = 0.0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(result: Result) -> str:
    """A scenario's tables and checks as plain text."""
    lines = [f"== {result.name}: {result.title} ({result.seconds:.1f} s)",
             f"   [{result.path}]"]
    for table in result.tables:
        cells = [list(table.columns), *([_cell(v) for v in row] for row in table.rows)]
        widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
        lines += ["", f"  {table.title}"]
        for k, row in enumerate(cells):
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if table.note:
            lines.append(f"  ({table.note})")
    if result.checks:
        lines.append("")
    for check in result.checks:
        lines.append(f"  target {'PASS' if check.ok else 'FAIL'}: {check.target} -- "
                     f"{check.detail}")
    return "\n".join(lines)


def _plain(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def to_json_obj(result: Result) -> dict[str, Any]:
    """The result as JSON-ready data (NaN becomes null)."""
    obj = asdict(result)
    obj["tables"] = [{**asdict(t), "rows": [[_plain(v) for v in row] for row in t.rows]}
                     for t in result.tables]
    return obj


def _weighted(label: str) -> bool:
    return "weighted" in label and "unweighted" not in label


def write_plots(results: Sequence[Result], directory: str | Path) -> list[Path]:
    """One PNG per plot of ``results`` in ``directory``; returns the paths written."""
    try:
        import matplotlib  # noqa: PLC0415 - an optional extra

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise PlotsUnavailable("plots need matplotlib: pip install shinyo[plots]") from None
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        for plot in result.plots:
            fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
            for label, points in plot.series:
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.plot(xs, ys, marker="o", markersize=3,
                        linestyle="-" if _weighted(label) else "--", label=label)
            if plot.logx:
                ax.set_xscale("log")
            ax.set_title(plot.title)
            ax.set_xlabel(plot.xlabel)
            ax.set_ylabel(plot.ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out / f"{plot.name}.png"
            fig.savefig(path, metadata={"Software": None})  # no version stamp: stable bytes
            plt.close(fig)
            written.append(path)
    return written
