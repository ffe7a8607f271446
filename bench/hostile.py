"""``python -m almanac bench hostile``: what each hostile or careless input costs to refuse.

Every case builds its input in a temporary folder, runs the real command in a fresh
process (``python -m almanac ...`` with a private ``ALMANAC_HOME``) and records its exit
code, its last line on stderr, the wall time and the process's peak memory (``wait4``'s
``ru_maxrss`` of that one child). The goal of each refusal: exit 2, one line, within 2 s
and under 300 MB. Nothing is asserted here; the tests hold the outcomes, this prints
the figures.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S, GOAL_MB = 2.0, 300.0
TIMEOUT_S = 120.0


@dataclass
class Case:
    name: str
    what: str
    build: Callable[[Path], list[str]]  # makes the input in a folder, returns the command's arguments
    env: dict | None = None


def _one_line_csv(folder: Path) -> list[str]:
    path = folder / "wide.csv"
    with open(path, "w") as fh:  # 1.1M header columns, 9 MB, no newline: "one line"
        fh.write(",".join(f"c{i}" for i in range(1_100_000)))
    return ["data", "import", str(path), "--symbol", "ES"]


def _long_symbol(folder: Path) -> list[str]:
    path = folder / "bars.csv"
    path.write_text("Date,Close\n2018-03-09,2700\n")
    return ["data", "import", str(path), "--symbol", "E" * 225]


def _big_file(folder: Path) -> list[str]:
    path = folder / "big.csv"
    row = b"2018-03-09 09:30:00,2700,2701,2699,2700.5,100\n"
    with open(path, "wb") as fh:
        fh.write(b"timestamp,open,high,low,close,volume\n")
        block = row * 100_000
        for _ in range(int(190 * 2**20 / len(block)) + 1):
            fh.write(block)
    return ["data", "import", str(path), "--symbol", "BIG"]


def _alias_bomb(folder: Path) -> list[str]:
    """Ten levels of nine aliases under model.params: 9**10 strings once expanded."""
    lines = ["name: bomb", "data: {symbol: ES}", "features: {sets: [early_session]}", "label: {kind: rest_of_day}",
             "model:", "  kind: lightgbm", "  params:",
             '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"    {cur}: &{cur} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    path = folder / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return ["train", "--config", str(path)]


def _long_yaml(folder: Path) -> list[str]:
    path = folder / "long.yaml"
    path.write_text("name: " + "x" * (3_850_000) + "\n")
    return ["train", "--config", str(path)]


def _huge_estimators(folder: Path) -> list[str]:
    path = folder / "huge.yaml"
    path.write_text("name: huge\ndata: {symbol: ES}\nfeatures: {sets: [early_session], cutoff: '10:15'}\n"
                    "label: {kind: rest_of_day}\nmodel: {kind: lightgbm, params: {n_estimators: 1000000000}}\n")
    return ["train", "--config", str(path)]


def _zip_bomb(folder: Path) -> list[str]:
    path = folder / "bomb.zip"
    zero = b"\0" * 2**20
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("model.txt", "w", force_zip64=True) as member:
            for _ in range(4 * 1024):  # 4 GiB of zeros, about 4 MB packed
                member.write(zero)
        zf.writestr("metadata.json", json.dumps({"format": "almanac-bundle"}))
    rows = folder / "rows.parquet"
    import pandas as pd

    pd.DataFrame({"date": pd.to_datetime(["2018-03-09"]), "x": [1.0]}).to_parquet(rows)
    return ["predict", "--bundle", str(path), "--input", str(rows), "--out", str(folder / "p.parquet")]


def _extra_fields(folder: Path) -> list[str]:
    """100 MB whose rows have 42 fields under a 2-column header (pandas made them an index)."""
    path = folder / "wider.csv"
    path.write_bytes(b"Date,Close\n" + (b"2018-03-09,1" + b"," * 40 + b"\n") * 2_000_000)
    return ["data", "import", str(path), "--symbol", "WIDE"]


def _parquet_rows_bomb(folder: Path) -> list[str]:
    """A few hundred KB of Parquet that holds 50 million repeated rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 50_000_000
    stamp = pa.scalar(1_520_587_800_000_000, pa.timestamp("us"))
    pq.write_table(pa.table({"Datetime": pa.repeat(stamp, n), "Close": pa.repeat(pa.scalar(1.0), n)}),
                   folder / "bomb.parquet", compression="zstd")
    return ["data", "import", str(folder / "bomb.parquet"), "--symbol", "BOMB"]


TINY_SPEC = ("name: tiny\ndata: {symbol: ES, start: 2016-01-01}\nfeatures: {sets: [early_session, regime]}\n"
             "label: {kind: rest_of_day}\nmodel: {kind: KIND, params: {n_estimators: 20}}\n"
             "validation: {n_splits: 2, min_train: 250}\n")


def _bundle(folder: Path, kind: str) -> Path:
    """A real bundle of a tiny run on the sample data (trained and exported by the CLI)."""
    home = folder.parent / "home"
    out = folder.parent / f"{kind}.zip"
    if not out.exists():
        spec = folder.parent / f"{kind}.yaml"
        spec.write_text(TINY_SPEC.replace("KIND", kind))
        env = {**os.environ, "ALMANAC_HOME": str(home)}
        done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(spec), "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        run_id = json.loads(done.stdout)["run_id"]
        subprocess.run([sys.executable, "-m", "almanac", "export", run_id, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, check=True)
        subprocess.run([sys.executable, "-m", "almanac", "features", "build", "--symbol", "ES", "--start",
                        "2018-06-01", "--sets", "early_session,regime", "--out", str(folder.parent / "rows.parquet")],
                       cwd=ROOT, env=env, capture_output=True, check=True)
    return out


def _resign(members: dict[str, bytes], dst: Path, metadata: bytes | None = None) -> Path:
    """Write a tampered bundle with every hash recomputed, as an attacker would
    (``metadata``: raw bytes to put in metadata.json instead)."""
    import hashlib

    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    members = {n: b for n, b in members.items() if n != "MANIFEST.sha256"}
    if metadata is None:
        meta = json.loads(members["metadata.json"])
        meta["files"] = {n: sha(b) for n, b in members.items() if n != "metadata.json"}
        metadata = json.dumps(meta).encode()
    members["metadata.json"] = metadata
    manifest = "".join(f"{sha(b)}  {n}\n" for n, b in sorted(members.items())).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in {**members, "MANIFEST.sha256": manifest}.items():
            zf.writestr(n, b)
        zf.comment = f"almanac-bundle 1 manifest-sha256:{sha(manifest)}".encode()
    return dst


def _tampered(kind: str, member: str, tamper) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        with zipfile.ZipFile(_bundle(folder, kind)) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        members[member] = tamper(members[member])
        path = _resign(members, folder / "tampered.zip")
        return ["predict", "--bundle", str(path), "--input", str(folder.parent / "rows.parquet"),
                "--out", str(folder / "p.parquet")]
    return build


def _deep_json_metadata(folder: Path) -> list[str]:
    with zipfile.ZipFile(_bundle(folder, "lightgbm")) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    path = _resign(members, folder / "deep.zip", metadata=b"[" * 100_000 + b"]" * 100_000)
    return ["predict", "--bundle", str(path), "--input", str(folder.parent / "rows.parquet"),
            "--out", str(folder / "p.parquet")]


def _xgb_split(data: bytes) -> bytes:
    model = json.loads(data)
    model["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 99_999_999
    return json.dumps(model).encode()


def _inf_rows(folder: Path) -> list[str]:
    import pandas as pd

    bundle = _bundle(folder, "lightgbm")
    rows = pd.read_parquet(folder.parent / "rows.parquet")
    rows.iloc[0, 1] = float("inf")
    rows.to_parquet(folder / "inf.parquet")
    return ["predict", "--bundle", str(bundle), "--input", str(folder / "inf.parquet"),
            "--out", str(folder / "p.parquet")]


CASES = [
    Case("csv-1.1M-columns", "a 9 MB one-line CSV with 1.1M header columns (was 442 s, 4.6 GB)", _one_line_csv),
    Case("csv-190MB", "a 190 MB CSV with ALMANAC_MAX_IMPORT_MB=100 (the upload path is bounded by the same "
         "check, at 100 MB by default)", _big_file, {"ALMANAC_MAX_IMPORT_MB": "100"}),
    Case("symbol-225", "a symbol of 225 characters (was 'File name too long')", _long_symbol),
    Case("yaml-alias-bomb", "a YAML alias bomb of 10 levels x 9 (was MemoryError after 148 s)", _alias_bomb),
    Case("yaml-3.85MB-line", "a 3.85 MB one-line YAML spec", _long_yaml),
    Case("n_estimators-1e9", "model.params.n_estimators: 1000000000 (ran forever)", _huge_estimators),
    Case("bundle-zip-bomb", "a 4 MB bundle that unpacks to 4 GiB (was 4.3 GB before verification)", _zip_bomb),
    Case("bundle-deep-json", "a re-signed bundle whose metadata.json is nested 100,000 deep (was RecursionError)", _deep_json_metadata),
    Case("csv-extra-fields", "100 MB of rows with 42 fields under a 2-column header (was 12 s, 1.6 GB)",
         _extra_fields),
    Case("parquet-50M-rows", "a few hundred KB of Parquet holding 50M rows (was 26 s, 3.9 GB)", _parquet_rows_bomb),
    Case("bundle-lgb-truncated", "a re-signed LightGBM bundle with model.txt cut in half (was SIGSEGV)",
         _tampered("lightgbm", "model/model.txt", lambda t: t[: len(t) // 2])),
    Case("bundle-xgb-split", "a re-signed XGBoost bundle with a split index of 99,999,999 (was SIGSEGV)",
         _tampered("xgboost", "model/model.json", _xgb_split)),
    Case("predict-inf", "prediction rows holding inf (was accepted silently)", _inf_rows),
]


_LAUNCHER = """
import json, os, subprocess, sys, time
report, errs, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
t0 = time.perf_counter()
with open(errs, "wb") as err:
    proc = subprocess.Popen(sys.argv[4:], stdout=subprocess.DEVNULL, stderr=err)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout and not timed_out:
            proc.kill()
            timed_out = True
        time.sleep(0.005)
with open(report, "w") as fh:
    json.dump({"seconds": time.perf_counter() - t0, "exit": os.waitstatus_to_exitcode(status),
               "peak_kb": usage.ru_maxrss, "timed_out": timed_out}, fh)
"""


def run_case(case: Case, folder: Path, home: Path) -> dict:
    argv = case.build(folder)
    env = {**os.environ, "ALMANAC_HOME": str(home), **(case.env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as scratch:
        # A child's peak RSS includes the memory of the process it was forked from, so the
        # command is started by a small launcher (a fresh interpreter) and measured there.
        report = Path(scratch) / "usage.json"
        errs = Path(scratch) / "stderr"
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report), str(errs), str(TIMEOUT_S),
                                 sys.executable, "-m", "almanac", *argv], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL)
        proc.wait()
        usage = json.loads(report.read_text())
        err = errs.read_bytes()
    seconds, code, peak_mb, timed_out = usage["seconds"], usage["exit"], usage["peak_kb"] / 1024, usage["timed_out"]
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    if timed_out:
        lines.append(f"(killed after {TIMEOUT_S:g} s)")
    return {"case": case.name, "what": case.what, "exit": code, "seconds": round(seconds, 2),
            "peak_mb": round(peak_mb, 1), "stderr_lines": len(lines), "message": lines[-1] if lines else "",
            "meets_goal": code == 2 and len(lines) == 1 and seconds <= GOAL_S and peak_mb <= GOAL_MB}


def run(selected: list[str] | None = None, progress=None) -> list[dict]:
    cases = [c for c in CASES if not selected or c.name in selected]
    out = []
    with tempfile.TemporaryDirectory(prefix="almanac-hostile-") as tmp:
        from almanac.sample import ensure_sample_data
        from almanac.store import Store

        if progress:
            progress(0.0, "writing the sample data")
        ensure_sample_data(Store(Path(tmp) / "home"))  # refusals must not depend on an empty home
        for i, case in enumerate(cases):
            if progress:
                progress(i / len(cases), case.name)
            folder = Path(tmp) / case.name
            folder.mkdir()
            out.append(run_case(case, folder, Path(tmp) / "home"))
    if progress:
        progress(1.0, "done")
    return out


def format_report(rows: list[dict]) -> str:
    head = f"{'case':<20} {'exit':>4} {'time s':>7} {'peak MB':>8}  goal  message"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['case']:<20} {r['exit']:>4} {r['seconds']:>7.2f} {r['peak_mb']:>8.1f}  "
                     f"{'PASS' if r['meets_goal'] else 'MISS'}  {r['message'][:110]}")
    lines.append(f"goal: exit 2 with one line on stderr, within {GOAL_S:g} s and under {GOAL_MB:g} MB "
                 "(the figures include starting Python and importing the lab)")
    return "\n".join(lines)
