"""Session leaderboards: the same three outputs as the customer task (terminal, JSON, Markdown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hoprec.evaluate.report import _fmt, atomic_write_text
from hoprec.evaluate.session_protocol import SessionEvaluationResult

METRICS = ("hr", "mrr", "ndcg")


def _cuts(result: SessionEvaluationResult) -> list[int]:
    return sorted({10, 20, result.k})


def leaderboard_rows(result: SessionEvaluationResult) -> tuple[list[str], list[list[str]]]:
    cuts = _cuts(result)
    header = ["model", *[f"{m.upper() if m != 'ndcg' else 'NDCG'}@{k}" for k in cuts for m in METRICS],
              "fit s", "ms/session (median)", "params"]
    rows = []
    for r in sorted(result.results, key=lambda r: -r.metrics.get(f"mrr@{result.k}", 0.0)):
        rows.append([
            r.model, *[_fmt(r.metrics.get(f"{m}@{k}")) for k in cuts for m in METRICS],
            f"{r.fit_seconds:.1f}", _fmt(r.latency_ms.get("median"), 2),
            json.dumps(r.params, sort_keys=True) if r.params else "",
        ])
    return header, rows


def slice_rows(result: SessionEvaluationResult) -> tuple[list[str], list[list[str]]]:
    k = result.k
    names: list[str] = []
    for r in result.results:
        names += [s for s in r.slices if s not in names]
    header = ["model", *[f"{s}: HR@{k} / MRR@{k}" for s in names]]
    rows = []
    for r in result.results:
        cells = []
        for s in names:
            m = r.slices.get(s, {})
            cells.append(f"{_fmt(m.get(f'hr@{k}'))} / {_fmt(m.get(f'mrr@{k}'))} (n={m.get('n', 0)})")
        rows.append([r.model, *cells])
    return header, rows


def summary(result: SessionEvaluationResult) -> str:
    st = result.split_stats
    return (
        f"Test cutoff {result.cutoffs['test']}, validation cutoff {result.cutoffs['validation']} "
        f"(gap {result.cutoffs['gap']}); {st['train_sessions']:,} training sessions "
        f"({st['train_items']:,} items), {st['test_sessions']:,} test sessions, "
        f"{st['test_prefixes']:,} test prefixes (every prefix vs its next item); "
        f"{st['test_targets_unseen_in_training']:,} test targets unseen in training (counted as "
        f"misses). Split: {st['test_split']}. Training filter: {st['train_filter']}. "
        f"Test figures; settings chosen on validation (MRR@{result.k})."
    )


def to_markdown(result: SessionEvaluationResult) -> str:
    def table(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)

    return "\n".join([
        f"# Leaderboard: {result.schema}", "", f"Query: `{result.query}`", "", summary(result), "",
        table(*leaderboard_rows(result)), "", "## Slices (test)", "", table(*slice_rows(result)), "",
    ])


def write_results(result: SessionEvaluationResult, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    jpath, mpath = out / "results.json", out / "leaderboard.md"
    atomic_write_text(jpath, json.dumps(result.to_dict(), indent=2, default=str))
    atomic_write_text(mpath, to_markdown(result))
    return jpath, mpath


def print_leaderboard(result: SessionEvaluationResult, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for title, (header, rows) in (
        (f"{result.schema}: {result.query}", leaderboard_rows(result)),
        ("slices (test)", slice_rows(result)),
    ):
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 or h == "params" else "right")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    console.print(summary(result), highlight=False)
