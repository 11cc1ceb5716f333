"""Figures of an evaluation: PNG files drawn with matplotlib (no display, no pyplot state).

Every ``*_figure`` function takes an :class:`~hoprec.evaluate.protocol.EvaluationResult` and a
file path, draws one PNG and returns a :class:`Figure` (or ``None`` when the result lacks what
the figure needs, e.g. per-entity arrays read from an older results folder):

* :func:`leaderboard_figure`: MAP, Recall and NDCG at the task's K per model, with 95% percentile
  bootstrap intervals over entities (:func:`intervals`);
* :func:`curves_figure`: metric@K and catalogue coverage for K = 1..50;
* :func:`popularity_figure`: share of recommendations per item-popularity decile against the
  test window's own purchases, and catalogue coverage;
* :func:`slices_figure`: the protocol's slices side by side, with intervals;
* :func:`training_figure`: training loss and held-out MAP per step for models that log them
  (:meth:`hoprec.models.base.Recommender.training_log`).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoprec.compat import require
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import EvaluationResult
from hoprec.evaluate.report import _FILE_MODE

LABELS = {"map": "MAP", "recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "mrr": "MRR",
          "hit_rate": "Hit rate", "coverage": "Catalogue coverage"}
DATA_COLOR = "#333333"


@dataclass
class Figure:
    """One drawn figure: file, title and a sentence saying how to read it."""

    name: str
    path: Path
    title: str
    caption: str


def entity_name(result: EvaluationResult) -> str:
    """What the query ranks for (``households`` for ``FOR EACH households.household_id``)."""
    m = re.search(r"FOR\s+EACH\s+(\w+)\.", result.query, flags=re.IGNORECASE)
    return m.group(1) if m else "entities"


def has_arrays(result: EvaluationResult) -> bool:
    return all(r.arrays for r in result.results) and bool(result.results)


def intervals(result: EvaluationResult, metric: str, prefix: str = "test", n_boot: int = 1000,
              seed: int = 0) -> list[tuple[float, float, float, int]]:
    """``(mean, low, high, n)`` per model: the NaN-mean of ``arrays[f"{prefix}/{metric}"]`` and
    its 95% percentile bootstrap interval over entities (NaN interval without per-entity data)."""
    out = []
    for r in result.results:
        values = r.arrays.get(f"{prefix}/{metric}")
        if values is None:
            mean = (r.metrics if prefix == "test" else r.slices.get(prefix.removeprefix("slice/"), {}))
            out.append((float(mean.get(metric, math.nan)), math.nan, math.nan, int(mean.get("n", 0))))
            continue
        ok = values[~np.isnan(values)]
        lo, hi = M.bootstrap_ci(ok, n_boot=n_boot, seed=seed)
        out.append((float(ok.mean()) if ok.size else math.nan, lo, hi, int(ok.size)))
    return out


def paired_difference(result: EvaluationResult, metric: str, a: int, b: int, n_boot: int = 1000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of model ``a`` minus model ``b`` over the same entities, with a paired 95% bootstrap
    interval (entities resampled together); NaNs without per-entity data."""
    va = result.results[a].arrays.get(f"test/{metric}")
    vb = result.results[b].arrays.get(f"test/{metric}")
    if va is None or vb is None:
        return math.nan, math.nan, math.nan
    d = va - vb
    d = d[~np.isnan(d)]
    lo, hi = M.bootstrap_ci(d, n_boot=n_boot, seed=seed)
    return float(d.mean()) if d.size else math.nan, lo, hi


# ------------------------------------------------------------------------------------- drawing
def _new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    mfig = require("matplotlib.figure", "plots")
    fig = mfig.Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _colors(n: int) -> list:
    cm = require("matplotlib", "plots").colormaps["tab10"]
    return [cm(i % 10) for i in range(n)]


def _save(fig, path: Path) -> None:
    """PNG written atomically (a temporary file in the same folder, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _errorbar(stats) -> np.ndarray | None:
    means = np.array([s[0] for s in stats])
    lo, hi = np.array([s[1] for s in stats]), np.array([s[2] for s in stats])
    if np.isnan(lo).all():
        return None
    return np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)])


def _percent(share: float) -> str:
    v = 100 * share
    return f"{v:.0f}%" if v >= 10 else f"{v:.2g}%"


def _subtitle(result: EvaluationResult) -> str:
    test = result.split_stats.get("test", {})
    return (f"{result.schema} · test window from {str(result.cutoffs.get('test', '?'))[:10]} · "
            f"{test.get('scored_entities', '?'):,} {entity_name(result)} scored")


def leaderboard_figure(result: EvaluationResult, path: Path, n_boot: int = 1000) -> Figure:
    metrics = ("map", "recall", "ndcg")
    order = np.argsort([-r.metrics.get("map", 0.0) for r in result.results], kind="stable")
    names = [result.results[i].model for i in order]
    colors = _colors(len(result.results))
    fig, axes = _new_figure(4 + 3.2 * len(metrics), 1.4 + 0.45 * len(names), ncols=len(metrics))
    for ax, metric in zip(axes[0], metrics):
        all_stats = intervals(result, metric, n_boot=n_boot)
        stats = [all_stats[i] for i in order]
        means = [s[0] for s in stats]
        y = np.arange(len(names))[::-1]
        ax.barh(y, means, xerr=_errorbar(stats), color=[colors[i] for i in order], capsize=3)
        ax.set_yticks(y, names if ax is axes[0][0] else [""] * len(names))
        ax.set_xlabel(f"{LABELS[metric]}@{result.k} (mean over {entity_name(result)})")
        ax.set_title(f"{LABELS[metric]}@{result.k}")
        for yy, m, s in zip(y, means, stats):
            right = s[2] if not math.isnan(s[2]) else m
            ax.text(right, yy, f" {m:.3f}", va="center", fontsize=8)
        ax.set_xlim(0, max([s[2] if not math.isnan(s[2]) else s[0] for s in stats] + [1e-9]) * 1.3)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Test leaderboard — {_subtitle(result)}")
    _save(fig, path)
    ci = "bars show 95% bootstrap intervals over entities" if has_arrays(result) else (
        "no per-entity data in these results, so no intervals")
    return Figure("leaderboard", path, "Leaderboard",
                  f"Test figures at K={result.k}, settings chosen on validation; {ci}.")


def curves_figure(result: EvaluationResult, path: Path) -> Figure | None:
    if not has_arrays(result) or "curve/map" not in result.results[0].arrays:
        return None
    metrics = ("map", "recall", "ndcg", "coverage")
    fig, axes = _new_figure(11, 7.5, ncols=2, nrows=2)
    colors = _colors(len(result.results))
    for ax, metric in zip(axes.ravel(), metrics):
        for r, c in zip(result.results, colors):
            v = r.arrays[f"curve/{metric}"]
            ax.plot(np.arange(1, len(v) + 1), v, color=c, label=r.model, lw=1.8)
        ax.axvline(result.k, color="grey", ls=":", lw=1)
        ax.text(result.k, ax.get_ylim()[1], f" task K={result.k}", va="top", fontsize=8, color="grey")
        ax.set_xlabel("K (length of the recommendation list)")
        ax.set_ylabel(f"{LABELS[metric]}@K" + (" (share of catalogue)" if metric == "coverage" else ""))
        ax.set_title(f"{LABELS[metric]}@K")
        ax.grid(alpha=0.3)
    axes[0][0].legend(title="model", fontsize=8)
    fig.suptitle(f"Metrics by list length — {_subtitle(result)}")
    _save(fig, path)
    kmax = len(result.results[0].arrays["curve/map"])
    return Figure("curves", path, "Metric@K curves",
                  f"Mean test metrics for every list length K = 1..{kmax} (the headline figures "
                  f"read K={result.k}); coverage is the share of the catalogue recommended to anyone.")


def popularity_figure(result: EvaluationResult, path: Path) -> Figure:
    fig, axes = _new_figure(13, 4.5, ncols=2)
    ax, cax = axes[0]
    colors = _colors(len(result.results))
    deciles = np.arange(1, 11)
    with_deciles = [(r, c) for r, c in zip(result.results, colors) if "popularity_deciles" in r.arrays]
    width = 0.8 / max(1, len(with_deciles))
    for j, (r, c) in enumerate(with_deciles):
        ax.bar(deciles - 0.4 + width * (j + 0.5), 100 * r.arrays["popularity_deciles"], width,
               color=c, label=r.model)
    data = result.arrays.get("data/truth_popularity_deciles")
    unknown = float(result.arrays.get("data/truth_unknown_share", math.nan))
    if data is not None:
        ax.plot(deciles, 100 * data, color=DATA_COLOR, marker="o", lw=2,
                label="test-window purchases (the data)")
    if with_deciles or data is not None:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no per-entity data in these results", ha="center", transform=ax.transAxes)
    ax.set_xticks(deciles)
    ax.set_xlabel("item-popularity decile at the cutoff (1 = least bought tenth of the catalogue)")
    ax.set_ylabel(f"share of top-{result.k} recommendations (%)")
    ax.set_title("Popularity bias")
    ax.grid(axis="y", alpha=0.3)
    cov = [r.metrics.get("coverage", math.nan) for r in result.results]
    y = np.arange(len(result.results))[::-1]
    cax.barh(y, [100 * c for c in cov], color=colors)
    cax.set_yticks(y, [r.model for r in result.results])
    cax.set_xscale("log")
    for yy, c in zip(y, cov):
        cax.text(100 * c, yy, f" {_percent(c)}", va="center", fontsize=8)
    cax.set_xlim(min([100 * c for c in cov if c > 0] + [1]) / 2, 300)
    cax.set_xlabel(f"catalogue coverage at K={result.k} (% of items, log scale)")
    cax.set_title("Catalogue coverage")
    cax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Popularity and coverage — {_subtitle(result)}")
    _save(fig, path)
    note = (f" {100 * unknown:.1f}% of the window's purchases were of items unknown at the cutoff "
            "(not in any decile)." if not math.isnan(unknown) and unknown > 0 else "")
    return Figure("popularity", path, "Popularity bias and coverage",
                  "Where each model's recommendations fall among items ranked by popularity before "
                  "the cutoff, against what customers actually bought in the test window; right: "
                  "share of the catalogue recommended to anyone." + note)


def _slice_metric(result: EvaluationResult, name: str) -> str:
    for r in result.results:
        m = r.slices.get(name, {})
        if "map" in m:
            return "map"
        if "recall" in m:
            return "recall"
    return "recall"


def slices_figure(result: EvaluationResult, path: Path, n_boot: int = 1000) -> Figure | None:
    names: list[str] = []
    for r in result.results:
        names += [s for s in r.slices if s not in names]
    if not names:
        return None
    colors = _colors(len(result.results))
    fig, axes = _new_figure(3.2 * len(names), 4.2, ncols=len(names))
    x = np.arange(len(result.results))
    for ax, name in zip(axes[0], names):
        metric = _slice_metric(result, name)
        stats = intervals(result, metric, prefix=f"slice/{name}", n_boot=n_boot)
        n = max(s[3] for s in stats)
        ax.set_title(f"{name}\n{LABELS[metric]}@{result.k}, n={n:,}", fontsize=9)
        if n == 0:
            ax.text(0.5, 0.5, "nobody in this slice", ha="center", transform=ax.transAxes)
        else:
            means = np.nan_to_num([s[0] for s in stats])
            ax.bar(x, means, yerr=_errorbar(stats), color=colors, capsize=3)
            ax.set_ylim(bottom=0, top=None if means.max() > 0 else 1)
            if means.max() == 0:
                ax.text(0.5, 0.5, "0 for every model", ha="center", transform=ax.transAxes)
        ax.set_xticks(x, [r.model for r in result.results], rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.set_ylabel(f"{LABELS[metric]}@{result.k}")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Slices — {_subtitle(result)}")
    _save(fig, path)
    return Figure("slices", path, "Slices",
                  "MAP for sparse and cold entities; Recall on truth items the entity bought before, "
                  "items new to it, and items first sold in the window. n counts entities with at "
                  "least one such truth item; bars are 95% bootstrap intervals when available.")


def training_figure(result: EvaluationResult, path: Path) -> Figure | None:
    logged = [(r, c) for r, c in zip(result.results, _colors(len(result.results))) if r.training_log]
    if not logged:
        return None
    keys = [k for k in ("loss", "val_map") if any(k in row for r, _ in logged for row in r.training_log)]
    fig, axes = _new_figure(5.5 * len(keys), 4, ncols=len(keys))
    for ax, key in zip(axes[0], keys):
        for r, c in logged:
            rows = [row for row in r.training_log if key in row and "step" in row]
            ax.plot([row["step"] for row in rows], [row[key] for row in rows], color=c, marker=".",
                    label=r.model)
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss" if key == "loss" else "held-out MAP (validation during fit)")
        ax.set_title("Training loss" if key == "loss" else "Held-out MAP during training")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training curves (final fit on the test snapshot) — {result.schema}")
    _save(fig, path)
    return Figure("training", path, "Training curves",
                  "Logged steps of the fit whose model was tested: training loss and the held-out "
                  "MAP the model used for early stopping (not the test figures).")


def draw_all(result: EvaluationResult, folder: Path, n_boot: int = 1000) -> list[Figure]:
    """Draw every figure the result supports into ``folder``; return them in report order."""
    folder = Path(folder)
    figs = [
        leaderboard_figure(result, folder / "leaderboard.png", n_boot),
        curves_figure(result, folder / "curves.png"),
        popularity_figure(result, folder / "popularity.png"),
        slices_figure(result, folder / "slices.png", n_boot),
        training_figure(result, folder / "training.png"),
    ]
    return [f for f in figs if f is not None]
