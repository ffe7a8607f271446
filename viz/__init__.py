"""Pure figure builders: data in, plotly ``Figure`` out.

Every figure uses the one plotly template registered as ``"almanac"`` by
:mod:`viz.theme` (importing any builder registers it). This package imports plotly,
pandas and numpy only: no dash, no almanac, no ml (docs/design.md §2).
"""

from viz.theme import COLORS, TEMPLATE

__all__ = ["COLORS", "TEMPLATE"]
