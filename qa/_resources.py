"""Find rule packs and report templates, from a checkout or an installed wheel.

In a checkout they live in ``rules/`` and ``reports/templates/`` beside the package; the wheel build
copies them into ``qa/_data/packs`` and ``qa/_data/templates``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def packs_dir() -> Path:
    """The folder holding the built-in rule packs (``*.toml``)."""
    here = _CHECKOUT / "rules"
    if here.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return here
    return Path(str(resources.files("qa") / "_data" / "packs"))


def templates_dir() -> Path:
    """The folder holding the report templates."""
    here = _CHECKOUT / "reports" / "templates"
    if here.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return here
    return Path(str(resources.files("qa") / "_data" / "templates"))
