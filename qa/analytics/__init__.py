"""Agreement analytics: answers built from the engine's tables (who agrees with whom, on what, and where
the guideline is ambiguous)."""

from qa.analytics.boundaries import analyse_boundaries  # noqa: F401
