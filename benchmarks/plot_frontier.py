"""Draw the MAP vs new-to-customer recall trade-off of the hybrid's discovery places.

Run:  python benchmarks/plot_frontier.py [-o benchmarks/results/frontier.png]
Reads the validation sweeps ``sweep_discovery_fixed.jsonl`` (the hybrid with 0, 1, 2 and 4
discovery places) and
``sweep_frontier_refs_<dataset>.jsonl`` (repeat, ALS, LightGCN), one panel per dataset, with the
issue's two targets as dotted lines (1.10 × repeat's MAP, 1.3 × ALS's new-to-customer recall); the
latest row of each setting wins. Validation figures only: this chooses a default, it is not a
headline result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _rows(path: Path, dataset: str) -> dict[str, dict]:
    """Latest row per (model, params) of one dataset."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("dataset") == dataset and "val_map" in r:
            out[json.dumps([r["model"], r["params"]], sort_keys=True)] = r
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "frontier.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"cj": "The Complete Journey", "or": "Online Retail"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, ds in zip(axes, names):
        pts = sorted((len(r["params"].get("discovery_positions", [])), r["val_new_recall"], r["val_map"])
                     for r in _rows(RESULTS / "sweep_discovery_fixed.jsonl", ds).values())
        if pts:
            ax.plot([p[1] for p in pts], [p[2] for p in pts], "o-", label="hybrid (default = 0 places)")
            for n, x, y in pts:
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        refs = {r["model"]: r for r in _rows(RESULTS / f"sweep_frontier_refs_{ds}.jsonl", ds).values()}
        if "repeat" in refs:
            ax.axhline(1.10 * refs["repeat"]["val_map"], color="grey", ls=":", lw=1)
            ax.annotate("1.10 × repeat (MAP target)", (0, 1.10 * refs["repeat"]["val_map"]), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(4, 3), fontsize=7, color="grey")
        if "als" in refs:
            ax.axvline(1.3 * refs["als"]["val_new_recall"], color="grey", ls=":", lw=1)
            ax.annotate("1.3 × ALS (discovery target)", (1.3 * refs["als"]["val_new_recall"], 0.5),
                        xycoords=("data", "axes fraction"), rotation=90, fontsize=7, color="grey",
                        textcoords="offset points", xytext=(3, 0))
        for r in refs.values():
            ax.plot(r["val_new_recall"], r["val_map"], "k^")
            ax.annotate(r["model"], (r["val_new_recall"], r["val_map"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=8)
        ax.set_title(f"{names[ds]} (validation)")
        ax.set_xlabel("Recall@12 on products new to the customer")
        ax.set_ylabel("MAP@12")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Discovery places: each number is how many of the 12 places go to never-bought products")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.output)
    print(args.output)


if __name__ == "__main__":
    main()
