"""Optional dependencies that explain themselves instead of failing deep inside."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying which hoprec extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is needed here: install it with `pip install 'hoprec[{extra}]'`"
        ) from e
