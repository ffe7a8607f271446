"""The importer reads a file a chunk at a time (almanac.filereader.CHUNK_ROWS rows) yet
refuses it exactly as a whole-file pass would: the same check first, the same row and
column, and accepts it as the same frame. Here the chunks are 3 rows long, so every
problem below sits in another chunk than the one a later check fails in."""

from __future__ import annotations

import pandas as pd
import pytest

import almanac.filereader as filereader
from almanac.errors import DataError
from almanac.importer import read_bars_file

HEADER = "Datetime,Open,High,Low,Close,Volume\n"


def rows(n=14, start="2018-03-09 14:30:00"):
    ts = pd.date_range(start, periods=n, freq="min")
    return [f"{t:%Y-%m-%d %H:%M:%S},100,101,99,100.5,{10 + i}" for i, t in enumerate(ts)]


def outcome(data: bytes, name: str, chunk: int, monkeypatch, **kw):
    monkeypatch.setattr(filereader, "CHUNK_ROWS", chunk)
    try:
        frame, freq, warnings = read_bars_file(data, "ES", display_name=name, **kw)
    except DataError as exc:
        return ("refused", exc.message)
    return ("ok", frame.to_dict("list"), freq, warnings)


def edited(**changes):
    lines = rows()
    for i, line in changes.items():
        lines[int(i[1:]) - 1] = line
    return (HEADER + "\n".join(lines) + "\n").encode()


CASES = {
    # a bar rule fails in chunk 1, a number in chunk 4: the number is named
    "rule-then-number": edited(r2="2018-03-09 14:31:00,100,98,99,100.5,11", r11="2018-03-09 14:40:00,100,x,99,100.5,20"),
    # a year out of range in chunk 1, an unreadable time in chunk 4: the unreadable time is named
    "year-then-nat": edited(r2="1800-03-09 14:31:00,100,101,99,100.5,11", r12="soon,100,101,99,100.5,21"),
    # offsets appear only in chunk 3
    "mixed-offsets": edited(r8="2018-03-09 14:37:00+00:00,100,101,99,100.5,17"),
    # volume (a later column) bad in chunk 1, open bad in chunk 3: open is named
    "columns-in-order": edited(r1="2018-03-09 14:30:00,100,101,99,100.5,", r9="2018-03-09 14:38:00,,101,99,100.5,18"),
    # two bar rules in different chunks: high < low comes before a negative volume
    "rules-in-order": edited(r3="2018-03-09 14:32:00,100,101,99,100.5,-1", r13="2018-03-09 14:42:00,100,98,99,100.5,22"),
    # a clash across chunks, an exact duplicate, and rows out of order
    "clash": edited(r10="2018-03-09 14:31:00,100,101,99,100.7,19"),
    "repairs": edited(r10="2018-03-09 14:31:00,100,101,99,100.5,11", r14="2018-03-09 14:20:00,100,101,99,100.5,23"),
    "good": edited(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunks_refuse_and_accept_as_the_whole_file(case, monkeypatch):
    data = CASES[case]
    whole = outcome(data, "bars.csv", 1 << 20, monkeypatch)
    assert outcome(data, "bars.csv", 3, monkeypatch) == whole
    assert (whole[0] == "ok") == (case in ("good", "repairs"))


def test_parquet_chunks_and_dst_inference_match_the_whole_file(monkeypatch, tmp_path):
    # naive New York wall-clock times through the 2018-11-04 repeated hour: inferred from the order
    ts = pd.date_range("2018-11-04 04:50", "2018-11-04 06:10", freq="10min", tz="UTC").tz_convert("America/New_York")
    frame = pd.DataFrame({"Datetime": ts.tz_localize(None), "Open": 100.0, "High": 101.0, "Low": 99.0,
                          "Close": 100.5, "Volume": range(len(ts))})
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path, index=False)
    whole = outcome(path.read_bytes(), "bars.parquet", 1 << 20, monkeypatch, freq="1min")
    assert whole[0] == "ok" and len(whole[1]["timestamp"]) == len(ts)
    assert outcome(path.read_bytes(), "bars.parquet", 3, monkeypatch, freq="1min") == whole
