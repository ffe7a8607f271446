"""Hostile bundles and inputs for `predict`: refused with exit 2 and one line, cheaply.

Each case runs the real command line in a subprocess (``python -m almanac predict``) and
measures its wall time and peak memory (``os.wait4``). Tampered bundles are re-signed
(:func:`resign`: file hashes in metadata.json and MANIFEST.sha256, and the zip comment
recomputed), as an attacker who knows the format would, so only the new defences stop
them. The bounds asserted here are generous sanity bounds; the goal (< 2 s, < 300 MB
per refusal) is measured by ``python -m almanac bench hostile``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from almanac.settings import REPO_ROOT
from ml.sandbox import DAMAGED


def _load_test_export():
    """tests/test_export.py as a module (its build_run writes a complete run folder),
    whatever the import mode of the tests folder (as test_report.py does)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_almanac_test_export_h",
                                                  Path(__file__).with_name("test_export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_te = _load_test_export()
FEATURES, build_run = _te.FEATURES, _te.build_run
PY = sys.executable


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def resign(members: dict[str, bytes], dst: Path, metadata: dict | bytes | None = None) -> Path:
    """Write ``members`` as a bundle at ``dst`` with every hash recomputed: the files map
    of metadata.json (when it is a JSON object), MANIFEST.sha256 and the zip comment.
    ``metadata`` replaces metadata.json (a dict is serialised with the new files map;
    bytes are written as they are)."""
    members = {n: b for n, b in members.items() if n != "MANIFEST.sha256"}
    others = {n: b for n, b in members.items() if n != "metadata.json"}
    if isinstance(metadata, bytes):
        members["metadata.json"] = metadata
    else:
        md = json.loads(members["metadata.json"]) if metadata is None else metadata
        if isinstance(md, dict) and "files" in md:
            md["files"] = {n: _sha(b) for n, b in others.items()}
        members["metadata.json"] = json.dumps(md).encode()
    manifest = "".join(f"{_sha(b)}  {n}\n" for n, b in sorted(members.items())).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in members.items():
            zf.writestr(n, b)
        zf.writestr("MANIFEST.sha256", manifest)
        zf.comment = f"almanac-bundle 1 manifest-sha256:{_sha(manifest)}".encode()
    return dst


def home_state(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): _sha(p.read_bytes()) for p in sorted(home.rglob("*")) if p.is_file()}


def run_cli(args: list[str], env: dict | None = None) -> tuple[int, str, float, float]:
    """(exit code, stderr, seconds, peak MB) of ``python -m almanac ARGS`` (signal death:
    a negative exit code). The peak is measured by /usr/bin/time from a small process
    (a child forked from pytest would report pytest's own size); without it, 0."""
    base = Path(tempfile.mkdtemp(prefix="cli-"))
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(base / "rss")] if Path("/usr/bin/time").exists() else []
    t0 = time.perf_counter()
    with open(base / "err", "w+b") as err:
        proc = subprocess.run([*timer, PY, "-m", "almanac", *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=err, env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = proc.returncode
    peak = 0.0
    if timer:
        text = (base / "rss").read_text().split()
        peak = float(text[-1]) / 1024
        if text[0] == "Command" and "signal" in text:  # "Command terminated by signal N"
            code = -int(text[text.index("signal") + 1])
    shutil.rmtree(base)
    return code, stderr, seconds, peak


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """One data home with a lightgbm, an xgboost and a logistic binary run, their bundles, and a
    features file of the runs' rows (ALMANAC_HOME points at it in every CLI call)."""
    from ml.export import export_run

    home = tmp_path_factory.mktemp("hostile-home")
    work = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALMANAC_HOME", str(home))
        lgb = build_run(home, "lightgbm", "binary", run_id="20260101-000000-es-rod-lgbm-h")
        xgb = build_run(home, "xgboost", "binary", run_id="20260101-000000-es-rod-xgb-h")
        skl = build_run(home, "logistic", "binary", run_id="20260101-000000-es-rod-log-h")
        bundles = {"lightgbm": export_run(lgb["run_id"], work / "lgb.zip"),
                   "xgboost": export_run(xgb["run_id"], work / "xgb.zip"),
                   "logistic": export_run(skl["run_id"], work / "log.zip")}
    rows = pd.read_parquet(Path(lgb["path"]) / "dataset.parquet")[FEATURES].iloc[:50]
    rows.to_parquet(work / "rows.parquet")
    return {"home": home, "work": work, "bundles": bundles, "rows": rows,
            "runs": {"lightgbm": Path(lgb["path"]), "xgboost": Path(xgb["path"]),
                     "logistic": Path(skl["path"])}}


@pytest.fixture
def predict(hostile, tmp_path):
    """``predict(bundle, input=None, env=None)`` -> (code, stderr, s, MB); asserts the data
    home is unchanged and, on failure, that no output was written."""
    def call(bundle: Path, inp: Path | None = None, env: dict | None = None):
        before = home_state(hostile["home"])
        out = tmp_path / "pred.parquet"
        result = run_cli(["predict", "--bundle", str(bundle), "--input",
                          str(inp or hostile["work"] / "rows.parquet"), "--out", str(out)],
                         {"ALMANAC_HOME": str(hostile["home"]), **(env or {})})
        assert home_state(hostile["home"]) == before
        if result[0] != 0:
            assert not out.exists()
        return result
    return call


def assert_refused(result, message: str, mb: float = 600) -> str:
    code, err, s, peak = result
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert message in lines[0], lines[0]
    assert peak < mb, (s, peak)  # time is printed by `bench hostile`, never asserted
    return lines[0]


# ---------------------------------------------------------------- zip limits

def make_bomb(path: Path, unpacked: int, lie: int | None = None) -> Path:
    """A bundle-like zip whose model/model.txt inflates to ``unpacked`` zero bytes (about 4.5 MB
    per GB packed). ``lie``: the size its central directory declares instead."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("metadata.json", b"{}")
        with zf.open("model/model.txt", "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            for _ in range(unpacked >> 20):
                fh.write(chunk)
        if lie is not None:
            zf.filelist[-1].file_size = lie
        zf.comment = b"almanac-bundle 1 manifest-sha256:" + b"0" * 64
    return path


@pytest.fixture(scope="session")
def bomb(hostile):
    """A 1 GiB zip bomb (~1 MB packed): more than ALMANAC_MAX_BUNDLE_MB (512) unpacked."""
    return make_bomb(hostile["work"] / "bomb.zip", 1 << 30)


def test_zip_bomb_refused_from_the_directory_before_unpacking(predict, bomb):
    assert bomb.stat().st_size < 8 * 2**20
    line = assert_refused(predict(bomb), "its members unpack to 1,073,741,826 bytes", mb=600)
    assert "ALMANAC_MAX_BUNDLE_MB" in line


def test_member_that_inflates_past_its_declared_size_is_refused(predict, tmp_path):
    lying = make_bomb(tmp_path / "lying.zip", 256 << 20, lie=1000)
    assert_refused(predict(lying), "lying.zip", mb=600)  # read stops at 1,001 bytes


def test_bundle_limits_come_from_the_environment(predict, hostile, tmp_path):
    path = hostile["bundles"]["lightgbm"]
    line = assert_refused(predict(path, env={"ALMANAC_MAX_BUNDLE_MB": "0.01"}), "the bundle is")
    assert "ALMANAC_MAX_BUNDLE_MB" in line
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(5000):
            zf.writestr(f"f{i}", b"")
    line = assert_refused(predict(many), "it holds 5,000 members, more than the limit of 16")
    assert "ALMANAC_MAX_BUNDLE_MEMBERS" in line


def make_wide_directory(path: Path, entries: int) -> Path:
    """A zip of ``entries`` empty members whose end record declares only one: the count
    check alone would let zipfile build every entry."""
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(entries):
            zf.writestr(f"member-with-a-fairly-long-name-{i:08d}", b"")
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = (1).to_bytes(2, "little") * 2  # entries on this disk, in total
    path.write_bytes(bytes(data))
    return path


def test_huge_zip_directory_refused_before_it_is_parsed(predict, tmp_path):
    wide = make_wide_directory(tmp_path / "wide.zip", 25_000)
    assert_refused(predict(wide), "wide.zip: its zip directory is", mb=600)


def test_duplicate_member_and_oversized_metadata_refused(hostile, tmp_path):
    from almanac.errors import AlmanacError
    from ml.export import load_bundle

    members = read_members(hostile["bundles"]["lightgbm"])
    dup = tmp_path / "dup.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(dup, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, b)
            zf.writestr("README.md", b"second copy")
    with pytest.raises(AlmanacError, match="member README.md appears more than once"):
        load_bundle(dup)
    big = resign(members, tmp_path / "big.zip", b" " * (9 * 2**20))
    with pytest.raises(AlmanacError, match="metadata.json declares 9,437,184 bytes, more than the 8,388,608"):
        load_bundle(big)


def test_encryption_other_compression_and_bad_manifest_lines_refused(hostile, tmp_path):
    from almanac.errors import AlmanacError
    from ml.export import load_bundle

    members = read_members(hostile["bundles"]["lightgbm"])
    src = hostile["bundles"]["lightgbm"]
    enc = tmp_path / "enc.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(enc, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
        zf.filelist[-1].flag_bits |= 0x1  # marked encrypted in the directory
        zf.comment = zin.comment
    with pytest.raises(AlmanacError, match="enc.zip: .* is encrypted"):
        load_bundle(enc)
    bz = tmp_path / "bz.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bz, "w", zipfile.ZIP_BZIP2) as zf:
        for n, b in members.items():
            zf.writestr(n, b)
        zf.comment = zin.comment
    with pytest.raises(AlmanacError, match="uses zip compression method 12"):
        load_bundle(bz)
    manifest = members["MANIFEST.sha256"] + b"not a hash  README.md\n"
    bad = tmp_path / "manifest.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, manifest if n == "MANIFEST.sha256" else b)
        zf.comment = f"almanac-bundle 1 manifest-sha256:{_sha(manifest)}".encode()
    with pytest.raises(AlmanacError, match="MANIFEST.sha256 has a malformed or repeated line"):
        load_bundle(bad)


# ---------------------------------------------------------------- metadata schema

def _meta(hostile) -> dict:
    return json.loads(read_members(hostile["bundles"]["lightgbm"])["metadata.json"])


METADATA_CASES = {
    # name: (change to metadata.json, message)
    "nested": (lambda md: b'{"format": "almanac-bundle", "spec": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
               "metadata.json is nested too deeply"),
    "deep": (lambda md: {**md, "spec": json.loads("[" * 100 + "]" * 100)},
             "metadata.json is nested more than 32 levels deep"),
    "names_type": (lambda md: {**md, "feature_names": 5}, "feature_names: Input should be a valid list"),
    "name_item": (lambda md: {**md, "feature_names": [1, 2]}, "feature_names.0: Input should be a valid string"),
    "no_task": (lambda md: {k: v for k, v in md.items() if k != "task"}, "task: Field required"),
    "no_model": (lambda md: {k: v for k, v in md.items() if k != "model"}, "model: Field required"),
    "model_file": (lambda md: {**md, "model": {**md["model"], "file": "model/../../x"}}, "model.file"),
    "threshold": (lambda md: {**md, "threshold": "0.55"}, "threshold: Input should be a valid number"),
    "not_object": (lambda md: [1, 2, 3], "metadata.json is not a JSON object"),
    "long_name": (lambda md: {**md, "feature_names": ["x" * 5000]}, "feature_names.0: String should have at most"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_malformed_metadata_is_one_line(case, hostile, predict, tmp_path):
    change, message = METADATA_CASES[case]
    members = read_members(hostile["bundles"]["lightgbm"])
    new = change(_meta(hostile))
    path = resign(members, tmp_path / f"{case}.zip", new)
    line = assert_refused(predict(path), message, mb=600)
    assert f"{case}.zip" in line and "metadata.json" in line


def test_metadata_is_parsed_only_after_its_hash_matches(hostile, tmp_path):
    """An altered, unparsable metadata.json is refused by its hash, not by the parser."""
    from almanac.errors import AlmanacError
    from ml.export import load_bundle

    members = read_members(hostile["bundles"]["lightgbm"])
    bad = tmp_path / "unsigned.zip"
    with zipfile.ZipFile(hostile["bundles"]["lightgbm"]) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n, b in members.items():
            zout.writestr(n, b"[" * 100_000 if n == "metadata.json" else b)
        zout.comment = zin.comment
    with pytest.raises(AlmanacError, match="metadata.json does not match its SHA-256"):
        load_bundle(bad)


# ---------------------------------------------------------------- native crashes

def _tree0(text: bytes, key: bytes, value: bytes) -> bytes:
    i = text.index(b"Tree=0")
    j = text.index(key + b"=", i)
    k = text.index(b"\n", j)
    return text[:j] + key + b"=" + value + text[k:]


def _xgb_tree0(data: bytes, field: str, value: int) -> bytes:
    model = json.loads(data)
    model["learner"]["gradient_booster"]["model"]["trees"][0][field][0] = value
    return json.dumps(model).encode()


CRASHES = {  # name: (bundle, model member, tampering); each crashed the CLI natively before
    "lgb_split_feature": ("lightgbm", "model/model.txt", lambda t: _tree0(t, b"split_feature", b"99999 0")),
    "lgb_left_child": ("lightgbm", "model/model.txt", lambda t: _tree0(t, b"left_child", b"-1 7")),
    "lgb_num_leaves": ("lightgbm", "model/model.txt", lambda t: _tree0(t, b"num_leaves", b"1000000000")),
    "lgb_truncated": ("lightgbm", "model/model.txt", lambda t: t[:len(t) // 2]),
    "xgb_split_index": ("xgboost", "model/model.json", lambda t: _xgb_tree0(t, "split_indices", 99_999_999)),
    "xgb_child_index": ("xgboost", "model/model.json", lambda t: _xgb_tree0(t, "left_children", 99_999_999)),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_native_crash_in_the_model_library_is_exit_2(case, hostile, predict, tmp_path):
    kind, member, tamper = CRASHES[case]
    members = read_members(hostile["bundles"][kind])
    members[member] = tamper(members[member])
    path = resign(members, tmp_path / f"{case}.zip")
    line = assert_refused(predict(path), DAMAGED, mb=600)
    assert f"{case}.zip" in line


def test_damaged_skops_model_is_exit_2(hostile, predict, tmp_path):
    members = read_members(hostile["bundles"]["logistic"])
    blob = members["model/model.skops"]
    members["model/model.skops"] = blob[:len(blob) // 2]
    line = assert_refused(predict(resign(members, tmp_path / "skops.zip")), "skops.zip: model.skops")
    assert "not a readable skops file" in line


def test_predict_in_child_is_the_one_reusable_path(hostile, monkeypatch):
    """What a server would call: the model's own predictions, or one AlmanacError."""
    from almanac.errors import AlmanacError
    from ml.export import load_bundle
    from ml.sandbox import SandboxedModel, predict_in_child

    bundle = load_bundle(hostile["bundles"]["xgboost"], check_model=False)
    model = bundle.predictor.model
    assert isinstance(model, SandboxedModel)
    proba = predict_in_child(model.model_bytes, model.meta, hostile["rows"])
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
    monkeypatch.setenv("ALMANAC_MODEL_TIMEOUT_S", "0.1")  # the child cannot even start Python in 0.1 s
    with pytest.raises(AlmanacError, match="ran longer than 0.1 s; raise ALMANAC_MODEL_TIMEOUT_S"):
        predict_in_child(model.model_bytes, model.meta, hostile["rows"])


def test_memory_limit_applies_to_the_child_only(hostile, predict):
    """The child's address space is capped: under 40 MB the library cannot even load, a
    one-line refusal naming the variable; the parent (well above 40 MB) is not capped."""
    line = assert_refused(predict(hostile["bundles"]["lightgbm"], env={"ALMANAC_MODEL_MEMORY_MB": "40"}),
                          "the model process could not start its library under ALMANAC_MODEL_MEMORY_MB=40",
                          mb=600)
    assert line.startswith("error: lgb.zip: ")


# ---------------------------------------------------------------- predict input

def _rows(hostile, tmp_path, name: str, change) -> Path:
    rows = hostile["rows"].copy()
    rows = change(rows)
    path = tmp_path / f"{name}.parquet"
    rows.to_parquet(path)
    return path


def test_inf_zero_rows_boolean_and_missing_columns_refused(hostile, predict, tmp_path):
    bundle = hostile["bundles"]["lightgbm"]

    def with_inf(r):
        r.iloc[3, 1] = np.inf
        r.iloc[4, 1] = -np.inf
        return r

    cases = {
        "inf": (with_inf, "feature column(s) gap_pct of inf.parquet hold infinite values (2 cells)"),
        "empty": (lambda r: r.iloc[:0], "empty.parquet has no rows"),
        "boolean": (lambda r: r.assign(gap_pct=r["gap_pct"] > 0), "gap_pct of boolean.parquet are boolean"),
        "missing": (lambda r: r.drop(columns=["rv_20d"]), "missing.parquet lacks feature column(s) rv_20d"),
    }
    for name, (change, message) in cases.items():
        assert_refused(predict(bundle, _rows(hostile, tmp_path, name, change)), message, mb=600)


def test_all_nan_feature_column_warns_and_predicts(hostile, predict, tmp_path):
    path = _rows(hostile, tmp_path, "nan", lambda r: r.assign(vix_ret_1d=np.nan))
    code, err, _, _ = predict(hostile["bundles"]["lightgbm"], path)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines[0] == ("warning: feature column(s) vix_ret_1d of nan.parquet are missing (NaN) in every "
                        "row; the model predicts them as missing values")
    # and these rows are the training days of the model (issue 9): said after the prediction
    assert len(lines) == 2 and lines[1].startswith("warning: 50 rows fall inside the model's training period (")
    assert lines[1].endswith("): in-sample")
    assert len(pd.read_parquet(tmp_path / "pred.parquet")) == 50


def test_cli_predict_matches_the_run_model_bit_for_bit(hostile, predict, tmp_path):
    """The child's predictions are the model's own: the sandbox changes no digit."""
    from ml import persist

    for kind, bundle in hostile["bundles"].items():
        code, err, _, _ = predict(bundle)
        assert code == 0, err
        pred = pd.read_parquet(tmp_path / "pred.parquet")
        run = hostile["runs"][kind]
        final = json.loads((run / "run.json").read_text())["final_model"]
        model = persist.load_model(run / "model", final)
        assert np.array_equal(pred["prob"].to_numpy(), model.predict_proba(hostile["rows"])[:, 1])
