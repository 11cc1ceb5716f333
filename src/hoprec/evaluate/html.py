"""The evaluation report: one HTML page with its PNG figures, viewable without a network.

``write_report(result, folder)`` writes ``folder/index.html`` and ``folder/figures/*.png`` (linked
relatively, so the folder can be moved or zipped), or, with ``embed=True``, a single
``index.html`` with the figures inlined as base64 data URIs. The figures are drawn into a
temporary folder first: a failure leaves an earlier report as it was.
"""

from __future__ import annotations

import base64
import html
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from hoprec.evaluate import plots
from hoprec.evaluate.protocol import EvaluationResult
from hoprec.evaluate.report import COLUMNS, _fmt, atomic_write_text, slice_rows

FIGURE_NAMES = ("leaderboard", "curves", "popularity", "slices", "training")

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
     max-width:1200px;padding:1.5em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd}
code{background:#f4f4f4;padding:.1em .3em;border-radius:3px}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .55em;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
td.params{text-align:left;font-family:monospace;font-size:.85em}
.ci{color:#777;font-size:.85em} .best{font-weight:bold}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em;margin-top:.3em} .note{background:#fff8e1;padding:.5em .8em}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells already built as HTML)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _with_ci(stat: tuple[float, float, float, int]) -> str:
    mean, lo, hi, _ = stat
    if math.isnan(lo):
        return _e(_fmt(mean))
    return f"{_e(_fmt(mean))} <span class='ci'>[{lo:.4f}, {hi:.4f}]</span>"


def leaderboard_html(result: EvaluationResult, n_boot: int = 1000) -> str:
    """Test leaderboard with 95% intervals and each model's paired difference to the best."""
    ci_metrics = ("map", "recall", "ndcg")
    stats = {m: plots.intervals(result, m, n_boot=n_boot) for m in ci_metrics}
    best = max(range(len(result.results)), key=lambda i: result.results[i].metrics.get("map", 0.0))
    header = ["model", *[h.format(k=result.k) for _, h in COLUMNS],
              f"MAP@{result.k} − best, paired 95% interval", "fit s", "chosen on validation"]
    rows = []
    for i in sorted(range(len(result.results)), key=lambda i: -result.results[i].metrics.get("map", 0.0)):
        r = result.results[i]
        cells = [f"<span class='{'best' if i == best else ''}'>{_e(r.model)}</span>"]
        for key, _ in COLUMNS:
            cells.append(_with_ci(stats[key][i]) if key in stats else _e(_fmt(r.metrics.get(key))))
        if i == best:
            cells.append("(best)")
        else:
            d, lo, hi = plots.paired_difference(result, "map", i, best, n_boot=n_boot)
            cells.append(_e(_fmt(d)) + ("" if math.isnan(lo) else f" <span class='ci'>[{lo:.4f}, {hi:.4f}]</span>"))
        cells += [f"{r.fit_seconds:.1f}",
                  f"<code>{_e(json.dumps(r.params, sort_keys=True))}</code>" if r.params else ""]
        rows.append(cells)
    return _table(header, rows, raw=True)


def _splits_html(result: EvaluationResult) -> str:
    keys: list[str] = []
    for stats in result.split_stats.values():
        keys += [k for k in stats if k not in keys and k != "cutoff"]
    rows = [[k.replace("_", " "), *[_fmt(s.get(k)) for s in result.split_stats.values()]] for k in keys]
    return _table(["", *[f"{name} (cutoff {s.get('cutoff', '?')})" for name, s in result.split_stats.items()]], rows)


def _validation_html(result: EvaluationResult) -> str:
    rows = []
    for r in result.results:
        for v in r.validation:
            chosen = "✓" if v.get("params") == r.params else ""
            rows.append([r.model, json.dumps(v.get("params", {}), sort_keys=True),
                         _fmt(v.get("map")), f"{v.get('seconds', 0.0):.1f}", chosen])
    return _table(["model", "setting", f"validation MAP@{result.k}", "seconds", "chosen"], rows)


def _img_src(fig: plots.Figure, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(fig.path.read_bytes()).decode("ascii")
    return f"figures/{fig.path.name}"


def render_html(result: EvaluationResult, figures: list[plots.Figure], embed: bool = False,
                n_boot: int = 1000) -> str:
    """The report page as a string; figure files must exist (they are read when ``embed``)."""
    test = result.split_stats.get("test", {})
    note = "" if plots.has_arrays(result) else (
        "<p class='note'>These results carry no per-entity data (<code>per_entity.npz</code>), so "
        "there are no intervals, metric@K curves or popularity deciles. Rerun "
        "<code>hoprec evaluate … -o DIR</code> with this version of hoprec to get them.</p>")
    figs = "".join(
        f"<h2 id='{_e(f.name)}'>{_e(f.title)}</h2><figure><img src='{_img_src(f, embed)}' "
        f"alt='{_e(f.title)}'><figcaption>{_e(f.caption)}</figcaption></figure>"
        for f in figures
    )
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hoprec report: {_e(result.schema)}</title><style>{CSS}</style></head>
<body>
<h1>Evaluation report: {_e(result.schema)}</h1>
<p>Query: <code>{_e(result.query)}</code></p>
<p>Test window from {_e(result.cutoffs.get('test', '?'))} ({_e(result.cutoffs.get('window', '?'))}),
validation cutoff {_e(result.cutoffs.get('validation', '?'))}: {_e(_fmt(test.get('scored_entities')))}
{_e(plots.entity_name(result))} scored, {_e(_fmt(test.get('cold_entities')))} cold ones reported apart.
Every figure is a <b>test</b> figure; each model's setting was chosen on the validation window.
Intervals are 95% percentile bootstrap intervals over {_e(plots.entity_name(result))}
({n_boot} resamples).</p>
{note}
<h2>Leaderboard (test)</h2>
{leaderboard_html(result, n_boot)}
{figs}
<h2>Slices (test)</h2>
{_table(*slice_rows(result))}
<h2>Splits</h2>
{_splits_html(result)}
<h2>Settings tried on validation</h2>
{_validation_html(result)}
<p class="ci">Generated by hoprec on {generated}. Schema digest {_e(result.schema_digest)}.</p>
</body></html>
"""


def write_report(result: EvaluationResult, folder: str | Path, embed: bool = False,
                 n_boot: int = 1000) -> Path:
    """Draw the figures and write ``folder/index.html``; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report.", dir=folder))
    try:
        figures = plots.draw_all(result, tmp, n_boot=n_boot)
        page = render_html(result, figures, embed=embed, n_boot=n_boot)
        fig_dir = folder / "figures"
        if not embed:
            fig_dir.mkdir(exist_ok=True)
            for f in figures:
                f.path = f.path.replace(fig_dir / f.path.name)
        drawn = {f.path.name for f in figures} if not embed else set()
        for name in FIGURE_NAMES:  # figures of an earlier report this one no longer has
            if f"{name}.png" not in drawn:
                (fig_dir / f"{name}.png").unlink(missing_ok=True)
        atomic_write_text(folder / "index.html", page)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if fig_dir.is_dir() and not any(fig_dir.iterdir()):
        fig_dir.rmdir()
    return folder / "index.html"
