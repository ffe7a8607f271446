"""The lab's one plotly template, registered as ``"almanac"``.

It starts from plotly's ``plotly_white`` and sets what every figure shares: the font
stack of the web pages (the Bootswatch "flatly" theme in ``assets/``), a colour order
that matches the page palette, light grid lines, left-aligned titles, a horizontal
legend above the plot and unified hover labels. Figure builders pass
``template=TEMPLATE`` explicitly instead of relying on plotly's global default.

Importing this module registers the template (idempotent: registering twice gives the
same template).
"""

from __future__ import annotations

import json
import pkgutil

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "almanac"

#: Named colours (the flatly palette), used by builders for meaning-bearing colours.
COLORS: dict[str, str] = {
    "ink": "#2C3E50",        # text, primary series
    "muted": "#7B8A8B",      # secondary text, reference lines
    "grid": "#E5E8EC",
    "up": "#18BC9C",         # rising bar / positive value
    "down": "#E74C3C",       # falling bar / negative value
    "accent": "#3498DB",
    "warning": "#F39C12",
    "volume_up": "rgba(24, 188, 156, 0.45)",
    "volume_down": "rgba(231, 76, 60, 0.45)",
}

def fold_name(fold) -> str:
    """How every chart and control names walk-forward fold id ``fold`` (0-based in the
    run's files): "Fold 1" is the first, oldest test period, as in the progress bar."""
    return f"Fold {int(fold) + 1}"


#: Series colours in order (qualitative, distinguishable, readable on white).
COLORWAY = ["#2C3E50", "#18BC9C", "#3498DB", "#F39C12", "#E74C3C", "#8E44AD", "#7B8A8B", "#16A085"]

FONT_FAMILY = ('Lato, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
               '"Liberation Sans", sans-serif')


#: Template layout keys of plot kinds the lab never draws (maps, polar, ternary, 3-D):
#: :func:`slim` leaves them out of a figure sent to the browser.
_UNUSED_LAYOUT = ("geo", "polar", "ternary", "scene", "mapbox", "map", "coloraxis")


def _merge(base: dict, extra: dict) -> dict:
    """``base`` updated recursively with ``extra`` (nested dicts merged, other values replaced)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


#: The trace types the lab draws (viz/ and pages/; a test keeps the list complete). The
#: template holds defaults for these only: plotly copies the whole template into every
#: figure it builds, and plotly_white's defaults for ~40 trace types (3-D, maps, ...) made
#: that copy most of the time a chart took to build (about 0.1 s a figure).
TRACE_TYPES = ("bar", "candlestick", "heatmap", "histogram", "scatter", "scattergl")


def template_dict() -> dict:
    """The template as plain JSON: plotly's ``plotly_white`` with the lab's layout merged in,
    its trace defaults cut to :data:`TRACE_TYPES` and its layout to the plot kinds the lab
    draws (not :data:`_UNUSED_LAYOUT`)."""
    base = json.loads(pkgutil.get_data("plotly", "package_data/templates/plotly_white.json"))
    base["data"] = {k: v for k, v in base.get("data", {}).items() if k in TRACE_TYPES}
    base["layout"] = {k: v for k, v in base.get("layout", {}).items() if k not in _UNUSED_LAYOUT}
    axis = dict(
        gridcolor=COLORS["grid"], zerolinecolor=COLORS["grid"], linecolor="#C9D1D9",
        showline=True, ticks="outside", tickcolor="#C9D1D9", ticklen=4,
        title=dict(font=dict(size=13, color=COLORS["muted"]), standoff=8),
        tickfont=dict(size=12, color=COLORS["ink"]), automargin=True,
    )
    layout = dict(
        font=dict(family=FONT_FAMILY, size=13, color=COLORS["ink"]),
        colorway=COLORWAY,
        title=dict(font=dict(size=16, color=COLORS["ink"]), x=0.0, xanchor="left", xref="paper",
                   y=0.98, yanchor="top", pad=dict(b=6)),
        margin=dict(l=64, r=24, t=64, b=48),
        paper_bgcolor="white", plot_bgcolor="white",
        xaxis=axis, yaxis=axis,
        legend=dict(orientation="h", x=0.0, xanchor="left", y=1.02, yanchor="bottom",
                    bgcolor="rgba(255,255,255,0)", font=dict(size=12)),
        hovermode="x unified",
        hoverlabel=dict(font=dict(family=FONT_FAMILY, size=12), bgcolor="white", bordercolor="#C9D1D9"),
    )
    return _merge(base, {"layout": layout})


def build_template(validate: bool = False) -> go.layout.Template:
    """A new ``almanac`` template object.

    Built without property validation by default, as plotly builds its own templates
    (validating the ~100 nested properties costs about half a second at every start);
    the test suite builds it with ``validate=True`` to catch a misspelt property.
    """
    return go.layout.Template(template_dict(), _validate=validate)


def register() -> str:
    """Register (or re-register) the template under :data:`TEMPLATE`; returns its name."""
    pio.templates[TEMPLATE] = build_template()
    return TEMPLATE


register()




def slim(fig: go.Figure) -> go.Figure:
    """``fig`` with its embedded template cut to what it uses (in place; returned).

    plotly copies the whole template (~8 kB of JSON, defaults for every trace type) into
    each figure; a page of ten charts would send it ten times. Kept: the defaults of the
    trace types in ``fig`` and the template's layout minus :data:`_UNUSED_LAYOUT`, so the
    figure is drawn exactly as before.
    """
    tpl = fig.layout.template.to_plotly_json() if fig.layout.template is not None else {}
    types = {t.type or "scatter" for t in fig.data}
    data = {k: v for k, v in (tpl.get("data") or {}).items() if k in types}
    layout = {k: v for k, v in (tpl.get("layout") or {}).items() if k not in _UNUSED_LAYOUT}
    fig.layout.template = go.layout.Template({"data": data, "layout": layout}, _validate=False)
    return fig
