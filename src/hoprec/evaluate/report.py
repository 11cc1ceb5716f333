"""Leaderboards as text: a rich table for the terminal, JSON and Markdown files (atomic writes).

Beside ``results.json``, ``per_entity.npz`` keeps the arrays behind the figures (per-entity test
values, metric@K curves, popularity deciles; keys ``"<i>/<name>"`` for the i-th model and
``"data/<name>"`` for the split) so reports can draw intervals; :func:`read_results` reads both.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hoprec.evaluate.protocol import EvaluationResult, ModelResult

ARRAYS_FILE = "per_entity.npz"

COLUMNS: list[tuple[str, str]] = [
    ("map", "MAP@{k}"), ("recall", "Recall@{k}"), ("precision", "Prec@{k}"), ("ndcg", "NDCG@{k}"),
    ("mrr", "MRR@{k}"), ("hit_rate", "Hit@{k}"), ("coverage", "Coverage"),
    ("diversity", "Diversity"), ("mean_popularity", "MeanPop"),
]


_FILE_MODE = 0o644  # what open() would give under the usual umask 022


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def leaderboard_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    header = ["model", *[h.format(k=result.k) for _, h in COLUMNS], "fit s", "params"]
    rows = []
    for r in sorted(result.results, key=lambda r: -r.metrics.get("map", 0.0)):
        rows.append([
            r.model, *[_fmt(r.metrics.get(key)) for key, _ in COLUMNS], f"{r.fit_seconds:.1f}",
            json.dumps(r.params, sort_keys=True) if r.params else "",
        ])
    return header, rows


def slice_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    names: list[str] = []
    for r in result.results:
        names += [s for s in r.slices if s not in names]
    header = ["model", *names]
    rows = []
    for r in result.results:
        cells = []
        for s in names:
            m = r.slices.get(s, {})
            main = m.get("map") if "map" in m else m.get("recall")
            label = "MAP" if "map" in m else "Recall"
            cells.append(f"{label} {_fmt(main)} (n={m.get('n', 0)})" if m.get("n") else "–")
        rows.append([r.model, *cells])
    return header, rows


def to_markdown(result: EvaluationResult) -> str:
    def table(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)

    test = result.split_stats["test"]
    out = [
        f"# Leaderboard: {result.schema}",
        "",
        f"Query: `{result.query}`",
        "",
        f"Test cutoff {result.cutoffs['test']} (window {result.cutoffs['window']}), validation "
        f"cutoff {result.cutoffs['validation']}; {test['scored_entities']} scored entities, "
        f"{test['cold_entities']} cold entities reported apart, {test['unknown_truth_items']} truth "
        f"items unknown at the cutoff (counted as misses). Test figures; settings chosen on validation.",
        "",
        table(*leaderboard_rows(result)),
        "",
        "## Slices (test)",
        "",
        table(*slice_rows(result)),
        "",
    ]
    return "\n".join(out)


def write_results(result: EvaluationResult, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    jpath, mpath = out / "results.json", out / "leaderboard.md"
    atomic_write_text(jpath, json.dumps(result.to_dict(), indent=2, default=str))
    atomic_write_text(mpath, to_markdown(result))
    arrays = {f"{i}/{key}": v for i, r in enumerate(result.results) for key, v in r.arrays.items()}
    arrays.update(result.arrays)
    if arrays:
        arrays["models"] = np.array([r.model for r in result.results])
        fd, tmp = tempfile.mkstemp(prefix=f".{ARRAYS_FILE}.", suffix=".npz", dir=out)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, out / ARRAYS_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:  # never leave arrays of an earlier run beside these results
        (out / ARRAYS_FILE).unlink(missing_ok=True)
    return jpath, mpath


def read_results(results_dir: str | Path) -> EvaluationResult:
    """Read ``results.json`` (and ``per_entity.npz`` when present) written by :func:`write_results`."""
    folder = Path(results_dir)
    jpath = folder / "results.json"
    if not jpath.is_file():
        raise FileNotFoundError(f"no results.json in {folder}: write one with `hoprec evaluate -o {folder}`")
    try:
        data = json.loads(jpath.read_text())
        results = [ModelResult(**r) for r in data.pop("results")]
        result = EvaluationResult(**data, results=results)
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise ValueError(f"{jpath} is not a hoprec results file: {e}") from None
    apath = folder / ARRAYS_FILE
    if apath.is_file():
        with np.load(apath, allow_pickle=False) as z:
            names = [str(m) for m in z["models"]] if "models" in z.files else []
            if names != [r.model for r in results]:
                raise ValueError(f"{apath} does not match {jpath} (models {names}): rerun the evaluation")
            for key in z.files:
                head, _, name = key.partition("/")
                if head == "data":
                    result.arrays[key] = z[key]
                elif head.isdigit():
                    results[int(head)].arrays[name] = z[key]
    return result


def print_leaderboard(result: EvaluationResult, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    header, rows = leaderboard_rows(result)
    t = Table(title=f"{result.schema}: {result.query}", title_justify="left")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i in (0, len(header) - 1) else "right")
    for row in rows:
        t.add_row(*row)
    console.print(t)
    header, rows = slice_rows(result)
    s = Table(title="slices (test)", title_justify="left")
    for h in header:
        s.add_column(h)
    for row in rows:
        s.add_row(*row)
    console.print(s)
