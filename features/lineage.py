"""Feature definitions and lineage: what each feature means, from which data, known when.

:data:`DEFINITIONS` is the contract: one entry per feature with its set, its exact
definition, the window of data it reads and when it is known. Cross-asset names carry
a ``{SYM}`` placeholder. All ``*_pct`` and return values are plain fractions
(0.01 = 1 %), never multiplied by 100.

Conventions used by every definition:

* day D is a trading day of the target symbol; D-1 is the previous trading day in the
  data (missing days simply do not exist);
* the *window* of day D is the regular-session bars stamped (bar start) in
  ``[session open, cutoff)`` local exchange time; the *price at the cutoff* is the
  close of the last bar in the window;
* *daily bars up to D-1* are the daily rows dated strictly before D, the last of which
  must be at most :data:`MAX_STALE_DAYS` calendar days old (else the value is NaN);
* ATR(14) is Wilder's average true range: ``TR_t = max(H_t, C_{t-1}) - min(L_t, C_{t-1})``,
  ``ATR_t = ATR_{t-1} + (TR_t - ATR_{t-1}) / 14``, seeded with the mean of the first 14
  true ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_SETS: tuple[str, ...] = ("early_session", "cross_asset", "regime")
#: Sets the user brings (:mod:`features.tables`, :mod:`features.plugins`): chosen by name,
#: never part of the default selection.
USER_SETS: tuple[str, ...] = ("tables", "plugins")
#: Sets chosen by name only, never part of the default selection: ``minute_path`` (the raw
#: price path open -> cutoff, :mod:`features.minute_path`; the input of the minirocket model).
SEQUENCE_SETS: tuple[str, ...] = ("minute_path",)
ALL_SETS: tuple[str, ...] = FEATURE_SETS + SEQUENCE_SETS + USER_SETS

#: A daily value older than this (calendar days before D) is not used: NaN instead.
MAX_STALE_DAYS = 10


@dataclass(frozen=True)
class FeatureDef:
    set: str
    name: str
    definition: str
    window: str  # may contain {open}, {cutoff}, {tz}
    kind: str  # "cutoff": known at the cutoff of D; "open": known at the session open of D


_W = "bars in [{open}, {cutoff}) {tz} of day D"
_D = "daily bars up to D-1"

DEFINITIONS: tuple[FeatureDef, ...] = (
    # ---------------------------------------------------------------- early session
    FeatureDef("early_session", "gap_pct",
               "day D's session open / day D-1's session close - 1 (session open = open of D's "
               "first regular-session bar)", "first bar of day D and last bar of day D-1", "open"),
    FeatureDef("early_session", "or_return_pct",
               "price at the cutoff / session open - 1", _W, "cutoff"),
    FeatureDef("early_session", "or_range_atr",
               "(highest high - lowest low of the window) / ATR(14) of the daily bars up to D-1",
               _W + "; " + _D + " (ATR)", "cutoff"),
    FeatureDef("early_session", "or_volume_rel",
               "window volume / mean window volume of the previous 10 trading days (the days among "
               "them that have a window; NaN when fewer than 5 do)", _W + " and the same window of the 10 previous trading days", "cutoff"),
    FeatureDef("early_session", "or_delta",
               "sum of sign(close - open) * volume / sum of volume over the window's bars "
               "(-1 .. 1; NaN when the window has no volume)", _W, "cutoff"),
    FeatureDef("early_session", "hod_tests",
               "number of window bars whose high is >= the highest high of the window's earlier "
               "bars (the first window bar has no earlier bars and does not count)", _W, "cutoff"),
    FeatureDef("early_session", "lod_tests",
               "number of window bars whose low is <= the lowest low of the window's earlier bars "
               "(the first window bar does not count)", _W, "cutoff"),
    FeatureDef("early_session", "vwap_dist_pct",
               "price at the cutoff / window VWAP - 1, VWAP = sum(close * volume) / sum(volume) "
               "over the window (NaN when the window has no volume)", _W, "cutoff"),
    FeatureDef("early_session", "or_close_pos",
               "(price at the cutoff - window low) / (window high - window low): where the cutoff "
               "price sits in the window's range, 0 = at the low, 1 = at the high (NaN for a zero range)",
               _W, "cutoff"),
    FeatureDef("early_session", "or_rv",
               "realized volatility of the window, not annualized: sqrt(sum of r_i^2), r_1 = "
               "ln(close_1 / open_1) for the first window bar, r_i = ln(close_i / close_(i-1)) after",
               _W, "cutoff"),
    FeatureDef("early_session", "overnight_range_atr",
               "(highest high - lowest low of the overnight bars) / ATR(14) of the daily bars up to "
               "D-1; overnight bars = bars after day D-1's session close and before day D's open "
               "(only when the symbol has bars outside the regular session; NaN on a day without any)",
               "bars in [close of D-1, open of D); " + _D + " (ATR)", "open"),
    # ---------------------------------------------------------------- cross asset
    FeatureDef("cross_asset", "{SYM}_ret_1d",
               "{SYM}'s close-to-close return of its last daily bar before D: close(D-1) / close(D-2) - 1, "
               "D-1 = {SYM}'s last date strictly before D", "{SYM} daily closes up to D-1", "open"),
    FeatureDef("cross_asset", "{SYM}_z20",
               "({SYM} close(D-1) - mean) / standard deviation (ddof=1) of {SYM}'s 20 daily closes "
               "ending at D-1", "{SYM} daily closes up to D-1 (20 days)", "open"),
    FeatureDef("cross_asset", "{SYM}_early_ret",
               "{SYM}'s price at the cutoff / its session open - 1 on day D (only when {SYM} has "
               "minute bars and the target has minute bars)", "{SYM} " + _W, "cutoff"),
    # ---------------------------------------------------------------- regime
    FeatureDef("regime", "atr14_rel", "ATR(14) / close at D-1", _D + " (15 days)", "open"),
    FeatureDef("regime", "atr14_pct252",
               "percentile rank of ATR(14) at D-1 among the 252 ATR(14) values ending at D-1: the "
               "fraction of them <= the D-1 value (0 .. 1)", _D + " (266 days)", "open"),
    FeatureDef("regime", "adx14",
               "Wilder's ADX(14) at D-1: +DM/-DM and TR Wilder-smoothed over 14 days, DI = 100 DM/TR, "
               "DX = 100 |DI+ - DI-| / (DI+ + DI-), ADX = Wilder average of DX over 14 days "
               "(seeded with the mean of the first 14 DX)", _D + " (28 days)", "open"),
    FeatureDef("regime", "gk_vol20",
               "Garman-Klass volatility over the 20 daily bars ending at D-1, annualized: "
               "sqrt(252 * mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))", _D + " (20 days)", "open"),
    FeatureDef("regime", "gk_vol20_pct252",
               "percentile rank of gk_vol20 at D-1 among its 252 values ending at D-1 (fraction <= it)",
               _D + " (271 days)", "open"),
    FeatureDef("regime", "days_since_high20",
               "trading days between D-1 and the most recent bar holding the highest high of the 20 "
               "daily bars ending at D-1 (0 = D-1 made it)", _D + " (20 days)", "open"),
    FeatureDef("regime", "days_since_low20",
               "trading days between D-1 and the most recent bar holding the lowest low of the 20 "
               "daily bars ending at D-1 (0 = D-1 made it)", _D + " (20 days)", "open"),
    FeatureDef("regime", "close_sma50_pct", "close(D-1) / mean of the 50 closes ending at D-1 - 1",
               _D + " (50 days)", "open"),
    # ---------------------------------------------------------------- minute path (mp_000, mp_001, ...)
    FeatureDef("minute_path", "mp_{J}",
               "ln(close of day D's bar starting J bars after the session open / D's session open price); "
               "NaN when that bar is missing (never filled here)", _W, "cutoff"),
    FeatureDef("regime", "close_sma200_pct", "close(D-1) / mean of the 200 closes ending at D-1 - 1",
               _D + " (200 days)", "open"),
)

_BY_NAME = {d.name: d for d in DEFINITIONS}

#: Regime features that need open/high/low daily bars (absent for close-only daily series).
NEEDS_OHLC = ("atr14_rel", "atr14_pct252", "adx14", "gk_vol20", "gk_vol20_pct252")


def definition(name: str, sym: str | None = None) -> FeatureDef:
    """The definition of a feature; cross-asset names are resolved with ``sym``."""
    if name.startswith("mp_") and name[3:].isdigit():
        d = _BY_NAME["mp_{J}"]
        return FeatureDef(d.set, name, d.definition.replace("J bars", f"{int(name[3:])} bars"), d.window, d.kind)
    if sym is not None:
        generic = "{SYM}" + name[len(sym):]
        d = _BY_NAME[generic]
        return FeatureDef(d.set, name, d.definition.replace("{SYM}", sym),
                          d.window.replace("{SYM}", sym), d.kind)
    return _BY_NAME[name]


def names(set_name: str) -> list[str]:
    return [d.name for d in DEFINITIONS if d.set == set_name]


def describe_features() -> list[dict]:
    """Every feature as ``{set, name, definition}`` (cross-asset names with ``{SYM}``)."""
    return [{"set": d.set, "name": d.name, "definition": d.definition} for d in DEFINITIONS]


def lineage_entry(d: FeatureDef, datasets: list[str], *, open_: str, cutoff: str, tz: str,
                  daily_only: bool = False) -> dict:
    """The lineage dict of one feature: datasets, window, known_as_of, definition."""
    window = d.window.format(open=open_, cutoff=cutoff, tz=tz)
    known = "session open of day D" if daily_only or d.kind == "open" else f"{cutoff} {tz} on day D"
    return {"datasets": list(datasets), "window": window, "known_as_of": known,
            "definition": d.definition, "set": d.set}
