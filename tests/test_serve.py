"""The REST service (``python -m almanac serve``), started as a real process on a free port.

One data home per module: a small synthetic market whose last ES day stops at 09:55 (before
the 10:15 cutoff), five runs trained by the real runner (LightGBM, logistic and XGBoost
``rest_of_day``, LightGBM ``forward_return`` and ``archetype``), the LightGBM
``rest_of_day`` run active. Every route, every bad request, the token rule on a
non-loopback bind, a hot swap during a stream of requests, and equality with
``python -m almanac predict`` to 1e-12.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SMALL = {"lightgbm": {"n_estimators": 40}, "logistic": {}, "xgboost": {"n_estimators": 40}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "almanac", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def start_service(home: Path, *args: str, env_extra: dict | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "ALMANAC_HOME": str(home), **(env_extra or {})}
    proc = subprocess.Popen([PY, "-m", "almanac", "serve", "--port", str(port), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
        try:
            if call(port, "GET", "/api/v1/health")[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not answer within 60 s")


def stop_service(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=20)


def call(port: int, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
    """(status, parsed JSON body) of one request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, json.loads(payload) if payload else None
    finally:
        conn.close()


def raw_request(port: int, head: bytes, body_chunks: list[bytes] = ()) -> tuple[int, dict]:
    """Send raw HTTP/1.1 bytes; the status and JSON of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        for chunk in body_chunks:
            try:
                s.sendall(chunk)
            except OSError:  # the service answered and closed before reading it all
                break
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            part = s.recv(65536)
            if not part:
                break
            data += part
    head_text, _, rest = data.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(rest[:_length(data)])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def rows_of(frame: pd.DataFrame, names: list[str]) -> list[dict]:
    """JSON rows of the model's features (NaN -> null)."""
    return [{c: (None if pd.isna(v) else float(v)) for c, v in rec.items()} for rec in frame[names].to_dict("records")]


def snapshot(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """{home, runs: {name: run record}, port, proc, short_day} with the service running."""
    from almanac import registry
    from almanac.sessions import Session
    from almanac.store import Store
    from bench.synthetic import synthetic_store
    from ml.runner import run_experiment

    home = tmp_path_factory.mktemp("serve") / "home"
    home.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("ALMANAC_HOME", str(home))
    try:
        store = Store(home)
        frames = synthetic_store(store, minute_start="2017-01-02", days=320)
        es = frames[("ES", "1min")]
        local = pd.DatetimeIndex(es["timestamp"]).tz_convert(Session().tz)
        last = local[-1].normalize()
        keep = ~((local >= last) & (local >= last + pd.Timedelta(hours=9, minutes=56)))
        store.write("ES", "1min", es[keep].reset_index(drop=True), source="synthetic test data")
        runs = {}
        for name, label, kind in (("lgbm", "rest_of_day", "lightgbm"), ("logit", "rest_of_day", "logistic"),
                                  ("xgb", "rest_of_day", "xgboost"), ("reg", "forward_return", "lightgbm"),
                                  ("arch", "archetype", "lightgbm")):
            runs[name] = run_experiment({"data": {"symbol": "ES"}, "features": {"cross_assets": ["VIX"]},
                                         "label": label, "model": {"kind": kind, "params": SMALL[kind]},
                                         "validation": {"n_splits": 3, "min_train": 150}}, store=store)
        registry.set_active(runs["lgbm"]["run_id"], home)
        registry.set_active(runs["reg"]["run_id"], home)
    finally:
        mp.undo()
    proc, port = start_service(home, env_extra={"ALMANAC_MAX_API_BODY_MB": "1", "ALMANAC_MAX_API_ROWS": "500"})
    data = {n: pd.read_parquet(Path(r["path"]) / "dataset.parquet") for n, r in runs.items()}
    yield {"home": home, "runs": runs, "data": data, "port": port, "proc": proc, "short_day": last}
    stop_service(proc)


def test_health_and_openapi(lab):
    status, body = call(lab["port"], "GET", "/api/v1/health")
    assert status == 200
    assert body == {"status": "ok", "version": "0.5.0", "data_home": str(lab["home"].resolve()),
                    "active_models": 2, "token_required": False}
    status, doc = call(lab["port"], "GET", "/api/v1/openapi.json")
    assert status == 200
    assert {"/api/v1/health", "/api/v1/models", "/api/v1/models/{run_id}", "/api/v1/predict",
            "/api/v1/predict/batch", "/api/v1/signal"} <= set(doc["paths"])
    assert "PredictRequest" in doc["components"]["schemas"]


def test_models_lists_the_active_runs_with_their_hashes(lab):
    status, body = call(lab["port"], "GET", "/api/v1/models")
    assert status == 200
    got = {m["run_id"]: m for m in body["models"]}
    assert set(got) == {lab["runs"]["lgbm"]["run_id"], lab["runs"]["reg"]["run_id"]}
    for name in ("lgbm", "reg"):
        run, m = lab["runs"][name], got[lab["runs"][name]["run_id"]]
        model_file = Path(run["path"]) / "model" / run["final_model"]["file"]
        assert m["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
        assert m["trained"] == run["date_range"]
        assert m["metrics"] == run["metrics"]
        assert (m["symbol"], m["label"], m["active"]) == ("ES", run["spec"]["label"]["kind"], True)
    assert got[lab["runs"]["lgbm"]["run_id"]]["threshold"] == 0.55


def test_model_card(lab):
    rid = lab["runs"]["logit"]["run_id"]
    status, body = call(lab["port"], "GET", f"/api/v1/models/{rid}")
    assert status == 200
    assert body["run_id"] == rid and body["active"] is False and body["model"] == "logistic"
    for heading in ("## Intended use", "## Features", "## Metrics", "## Backtest"):
        assert heading in body["card"]
    assert body["feature_names"] == lab["runs"]["logit"]["feature_names"]
    status, body = call(lab["port"], "GET", "/api/v1/models/20990101-000000-nope")
    assert status == 404 and body["detail"].startswith("no run 20990101-000000-nope in ")


@pytest.mark.parametrize("name", ["lgbm", "logit", "xgb", "reg", "arch"])
def test_predictions_equal_the_cli_predict(lab, tmp_path, name):
    run, data = lab["runs"][name], lab["data"][name]
    rid, names = run["run_id"], run["feature_names"]
    env = {**os.environ, "ALMANAC_HOME": str(lab["home"])}
    done = cli("export", rid, "--out", str(tmp_path / "b.zip"), env=env)
    assert done.returncode == 0, done.stderr
    data.to_parquet(tmp_path / "rows.parquet")
    done = cli("predict", "--bundle", str(tmp_path / "b.zip"), "--input", str(tmp_path / "rows.parquet"),
               "--out", str(tmp_path / "pred.parquet"), env=env)
    assert done.returncode == 0, done.stderr
    expected = pd.read_parquet(tmp_path / "pred.parquet").drop(columns="date")
    status, body = call(lab["port"], "POST", "/api/v1/predict/batch", {"run_id": rid, "rows": rows_of(data, names)})
    assert status == 200, body
    got = pd.DataFrame(body["predictions"])
    assert body["run_id"] == rid and len(got) == len(data) > 200
    assert list(got.columns) == list(expected.columns)
    for col in expected.columns:
        if expected[col].dtype.kind == "f":
            np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(), rtol=0, atol=1e-12)
        else:
            assert got[col].tolist() == expected[col].tolist()
    # one row at a time through /predict: the same numbers
    status, one = call(lab["port"], "POST", "/api/v1/predict", {"run_id": rid, "rows": rows_of(data.iloc[7:8], names)})
    assert status == 200 and one["predictions"][0] == body["predictions"][7]


def test_predict_by_symbol_and_label_names_the_active_run(lab):
    run, data = lab["runs"]["lgbm"], lab["data"]["lgbm"]
    body = {"symbol": "ES", "label": "rest_of_day", "rows": rows_of(data.iloc[:3], run["feature_names"])}
    status, out = call(lab["port"], "POST", "/api/v1/predict", body)
    assert status == 200 and out["run_id"] == run["run_id"] and out["threshold"] == 0.55
    for p in out["predictions"]:
        want = 1 if p["prob"] >= 0.55 else -1 if p["prob"] <= 0.45 else 0
        assert p["signal"] == want


def test_signal_builds_the_day_like_training(lab):
    run, data = lab["runs"]["lgbm"], lab["data"]["lgbm"]
    day = data.index[-5]
    status, sig = call(lab["port"], "GET", f"/api/v1/signal?symbol=ES&label=rest_of_day&date={day:%Y-%m-%d}")
    assert status == 200, sig
    assert sig["run_id"] == run["run_id"] and sig["date"] == f"{day:%Y-%m-%d}" and sig["cutoff"] == "10:15"
    want = data.loc[day, run["feature_names"]]
    assert list(sig["features"]) == run["feature_names"]
    for c in run["feature_names"]:
        v = sig["features"][c]
        assert (v is None and pd.isna(want[c])) or v == want[c], c
    status, pred = call(lab["port"], "POST", "/api/v1/predict",
                        {"run_id": run["run_id"], "rows": rows_of(data.loc[[day]], run["feature_names"])})
    assert sig["prob"] == pred["predictions"][0]["prob"] and sig["signal"] == pred["predictions"][0]["signal"]
    assert sig["threshold"] == 0.55 and sig["in_training_period"] is True
    # the label defaults to the symbol's one active binary model only when unambiguous
    status, both = call(lab["port"], "GET", f"/api/v1/signal?symbol=ES&date={day:%Y-%m-%d}")
    assert status == 422 and both["detail"] == ("ES has active models for labels forward_return, rest_of_day: "
                                                 "pass label=")


def test_signal_refusals(lab):
    port = lab["port"]
    short = lab["short_day"]
    status, body = call(port, "GET", f"/api/v1/signal?symbol=ES&label=rest_of_day&date={short:%Y-%m-%d}")
    assert status == 404
    assert body["detail"] == (f"ES bars reach only 09:55 on {short:%Y-%m-%d}, before the cutoff 10:15: ask again "
                              "once the bars up to the cutoff are imported")
    sunday = pd.Timestamp("2017-06-04")
    status, body = call(port, "GET", f"/api/v1/signal?symbol=ES&label=rest_of_day&date={sunday:%Y-%m-%d}")
    assert status == 404 and body["detail"].startswith("ES has no trading day between 2017-06-04 and 2017-06-04")
    status, body = call(port, "GET", "/api/v1/signal?symbol=ES&label=rest_of_day&date=June-ish")
    assert status == 422 and body["detail"] == "date 'June-ish' is not a date: use YYYY-MM-DD, e.g. 2018-03-01"
    status, body = call(port, "GET", "/api/v1/signal?label=rest_of_day")
    assert status == 422 and body["detail"] == ("query parameter symbol: Field required; e.g. /api/v1/signal?"
                                                "symbol=ES&label=rest_of_day&date=2018-03-01")
    status, body = call(port, "GET", "/api/v1/signal?symbol=NQ&label=rest_of_day")
    assert status == 404 and body["detail"].startswith("no active model for NQ")
    status, body = call(port, "GET", "/api/v1/signal?symbol=ES&label=archetype")
    assert status == 404 and body["detail"].startswith("no active model for ES / archetype")


def bad_requests(lab) -> list[tuple[str, dict | bytes, int, str]]:
    run, data = lab["runs"]["lgbm"], lab["data"]["lgbm"]
    rid, names = run["run_id"], run["feature_names"]
    row = rows_of(data.iloc[:1], names)[0]
    first = names[0]
    cols = (f"send exactly its {len(names)} feature columns (GET /api/v1/models/{rid} lists them), "
            "null for a missing value")
    return [
        ("predict", {"run_id": rid, "rows": [{**row, "zz_extra": 1.0}]}, 422,
         f"rows[0] does not match run {rid}'s features: unknown column(s) zz_extra; {cols}"),
        ("predict", {"run_id": rid, "rows": [{k: v for k, v in row.items() if k != first}]}, 422,
         f"rows[0] does not match run {rid}'s features: missing column(s) {first}; {cols}"),
        ("predict", {"run_id": rid, "rows": [{**row, first: "1.5"}]}, 422,
         f'rows[0].{first} is "1.5" (str): send a number, or null for a missing value'),
        ("predict", {"run_id": rid, "rows": [{**row, first: True}]}, 422,
         f"rows[0].{first} is true (bool): send a number, or null for a missing value"),
        ("predict", json.dumps({"run_id": rid, "rows": [{**row, first: 1.0}]}).replace("1.0", "Infinity", 1).encode(),
         422, f"rows[0].{first} is infinite: send a finite number, or null for a missing value"),
        ("predict", {"run_id": "20990101-000000-nope", "rows": [row]}, 404,
         f"no run 20990101-000000-nope in {lab['home'].resolve() / 'runs'}: list the runs with "
         "`python -m almanac runs list`"),
        ("predict", {"run_id": "../etc", "rows": [row]}, 422,
         "'../etc' is not a run id (letters, digits, '-', '_' and '.', no path separators): copy one from "
         "`python -m almanac runs list`"),
        ("predict", {"run_id": rid, "symbol": "ES", "rows": [row]}, 422,
         "give either run_id or symbol and label, not both"),
        ("predict", {"symbol": "ES", "label": "archetype", "rows": [row]}, 404,
         "no active model for ES / archetype: mark a run active on /models or with `python -m almanac runs "
         "activate RUN_ID` (active for ES: forward_return, rest_of_day)"),
        ("predict", {"run_id": rid, "rows": [row] * 101}, 422,
         "101 rows are more than the 100 predict takes: use /api/v1/predict/batch (up to 500 rows)"),
        ("predict/batch", {"run_id": rid, "rows": [row] * 501}, 422,
         "501 rows are more than the 500 predict/batch takes: split them or raise ALMANAC_MAX_API_ROWS"),
        ("predict", {"run_id": rid, "rows": []}, 422,
         'rows must be a non-empty list of objects {feature: number or null}: send {"run_id": ..., '
         '"rows": [{feature: number, ...}]}'),
        ("predict", {"run_id": rid, "rows": [row], "colour": "red"}, 422,
         "unknown field colour: the body takes run_id or symbol and label, and rows"),
        ("predict", b"{not json", 422,
         'the body is not valid JSON: send {"run_id": ..., "rows": [{feature: number, ...}]}'),
    ]


def test_bad_requests_get_one_line_and_change_nothing(lab):
    before = snapshot(lab["home"])
    for route, body, status, message in bad_requests(lab):
        raw = body if isinstance(body, bytes) else None
        got, out = call(lab["port"], "POST", f"/api/v1/{route}", None if raw else body, raw=raw)
        assert (got, out) == (status, {"detail": message})
    assert snapshot(lab["home"]) == before


def test_missing_values_are_sent_as_null(lab):
    from ml import persist

    run, data = lab["runs"]["lgbm"], lab["data"]["lgbm"]
    row = rows_of(data.iloc[:1], run["feature_names"])[0]
    row[run["feature_names"][0]] = None
    status, out = call(lab["port"], "POST", "/api/v1/predict", {"run_id": run["run_id"], "rows": [row]})
    assert status == 200
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    frame = pd.DataFrame([row], columns=run["feature_names"], dtype="float64")
    assert out["predictions"][0]["prob"] == model.predict_proba(frame)[0, 1]


def test_oversized_bodies_are_refused_unread(lab):
    too_large = {"detail": "request body is over the 1 MB limit: send fewer rows per request or raise "
                           "ALMANAC_MAX_API_BODY_MB"}
    head = (b"POST /api/v1/predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * 2**20))
    assert raw_request(lab["port"], head) == (413, too_large)  # declared: answered before any byte is read
    chunked = (b"POST /api/v1/predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    body = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20 + [b"0\r\n\r\n"]  # 1.25 MB without a length
    assert raw_request(lab["port"], chunked, body) == (413, too_large)
    run = lab["runs"]["lgbm"]  # a chunked body under the limit is read and answered as usual
    small = json.dumps({"run_id": run["run_id"], "rows": rows_of(lab["data"]["lgbm"].iloc[:3], run["feature_names"])})
    parts = [small[:500].encode(), small[500:].encode()]
    status, out = raw_request(lab["port"], chunked.replace(b"/predict/batch", b"/predict"),
                              [b"%x\r\n%s\r\n" % (len(c), c) for c in parts] + [b"0\r\n\r\n"])
    assert status == 200 and out["run_id"] == run["run_id"] and len(out["predictions"]) == 3


def test_a_model_file_that_fails_its_hash_is_never_served(lab):
    run, data = lab["runs"]["logit"], lab["data"]["logit"]
    body = {"run_id": run["run_id"], "rows": rows_of(data.iloc[:2], run["feature_names"])}
    status, first = call(lab["port"], "POST", "/api/v1/predict", body)
    assert status == 200  # loaded and cached
    model_file = Path(run["path"]) / "model" / run["final_model"]["file"]
    original = model_file.read_bytes()
    try:
        model_file.write_bytes(original + b"\n")
        status, out = call(lab["port"], "POST", "/api/v1/predict", body)
        assert status == 500
        assert out["detail"] == (f"run {run['run_id']}: model file {model_file} does not match its SHA-256 in "
                                 "the metadata (altered or damaged); re-run or re-export the experiment")
    finally:
        model_file.write_bytes(original)
    assert call(lab["port"], "POST", "/api/v1/predict", body) == (200, first)


def test_hot_swap_during_a_stream_of_requests(lab):
    """Requests by symbol and label while the active run flips (CLI): each answer names one
    run and carries exactly that run's numbers; the last flip is served without a restart."""
    a, b = lab["runs"]["lgbm"], lab["runs"]["logit"]
    rows = rows_of(lab["data"]["lgbm"].iloc[:4], a["feature_names"])
    expected = {}
    for run in (a, b):
        status, out = call(lab["port"], "POST", "/api/v1/predict", {"run_id": run["run_id"], "rows": rows})
        expected[run["run_id"]] = out["predictions"]
    assert expected[a["run_id"]] != expected[b["run_id"]]
    env = {**os.environ, "ALMANAC_HOME": str(lab["home"])}
    answers, stop = [], threading.Event()

    def stream():
        conn = http.client.HTTPConnection("127.0.0.1", lab["port"], timeout=30)
        body = json.dumps({"symbol": "ES", "label": "rest_of_day", "rows": rows})
        while not stop.is_set() and len(answers) < 5000:
            conn.request("POST", "/api/v1/predict", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answers.append((resp.status, json.loads(resp.read())))
        conn.close()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        for run in (b, a, b):
            done = cli("runs", "activate", run["run_id"], env=env)
            assert done.returncode == 0, done.stderr
            time.sleep(0.3)
    finally:
        stop.set()
        worker.join(30)
    try:
        assert len(answers) > 20
        seen = [out["run_id"] for _, out in answers]
        for status, out in answers:
            assert status == 200
            assert out["predictions"] == expected[out["run_id"]]
        assert set(seen) == {a["run_id"], b["run_id"]}
        status, out = call(lab["port"], "POST", "/api/v1/predict", {"symbol": "ES", "label": "rest_of_day",
                                                                     "rows": rows})
        assert out["run_id"] == b["run_id"]
    finally:
        assert cli("runs", "activate", a["run_id"], env=env).returncode == 0


def test_status_file_and_curl_lines(lab):
    from ml.serving import curl_lines, service_status

    st = service_status(lab["home"])
    assert st["running"] is True and st["url"] == f"http://127.0.0.1:{lab['port']}"
    assert st["detail"] == "2 active model(s)" and st["token_required"] is False
    lines = curl_lines("RID", {"x": 1.5}, "ES", "rest_of_day", st["url"])
    assert lines[2] == (f"curl -s -X POST {st['url']}/api/v1/predict -H 'Content-Type: application/json' "
                        "-d '{\"run_id\": \"RID\", \"rows\": [{\"x\": 1.5}]}'")
    assert lines[3] == f"curl -s '{st['url']}/api/v1/signal?symbol=ES&label=rest_of_day'"
    assert service_status(lab["home"] / "elsewhere")["running"] is False


def test_models_page_shows_the_service_and_the_curl_lines(lab, page_module, monkeypatch):
    monkeypatch.setenv("ALMANAC_HOME", str(lab["home"]))
    models = page_module("models")
    run = lab["runs"]["lgbm"]
    panel = models.service_state([{"run_id": run["run_id"]}], None)
    text = json.dumps([c.to_plotly_json() for c in panel], default=lambda o: o.to_plotly_json())
    assert '"running"' in text and f"http://127.0.0.1:{lab['port']}/api/v1" in text
    curl = panel[-1].children.split("\n")
    assert curl[0] == f"curl -s http://127.0.0.1:{lab['port']}/api/v1/health"
    last = lab["data"]["lgbm"][run["feature_names"]].iloc[-1]
    body = json.loads(curl[2].split(" -d '")[1][:-1])
    assert body["run_id"] == run["run_id"] and list(body["rows"][0]) == run["feature_names"]
    assert all((v is None and pd.isna(last[k])) or v == last[k] for k, v in body["rows"][0].items())
    assert call(lab["port"], "POST", "/api/v1/predict", body)[0] == 200  # the line works as shown
    none = models.service_state([], None)
    assert "Select one run" in json.dumps([c.to_plotly_json() for c in none], default=lambda o: o.to_plotly_json())
    monkeypatch.setenv("ALMANAC_HOME", str(lab["home"] / "nowhere"))
    stopped = json.dumps([c.to_plotly_json() for c in models.service_state([], None)],
                         default=lambda o: o.to_plotly_json())
    assert '"not running"' in stopped and "python -m almanac serve" in stopped


def test_a_foreign_host_is_refused(lab):
    head = b"GET /api/v1/health HTTP/1.1\r\nHost: rebind.example\r\n\r\n"
    status, body = raw_request(lab["port"], head)
    assert status == 400 and body["detail"].startswith("Host 'rebind.example' is not served here")


def test_non_loopback_bind_needs_a_token(lab):
    env = {k: v for k, v in os.environ.items() if k != "ALMANAC_API_TOKEN"}
    env["ALMANAC_HOME"] = str(lab["home"])
    before = snapshot(lab["home"])
    t0 = time.perf_counter()
    done = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("error: refusing to serve on 0.0.0.0 without ALMANAC_API_TOKEN: set it to a long random "
                           "string (clients then send 'Authorization: Bearer <token>') or bind 127.0.0.1\n")
    assert time.perf_counter() - t0 < 10
    done = cli("serve", "--host", "0.0.0.0", env={**env, "ALMANAC_API_TOKEN": "short"}, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("error: ALMANAC_API_TOKEN has 5 characters: use at least 16")
    done = cli("serve", "--port", str(lab["port"]), env=env, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith(f"error: cannot bind 127.0.0.1:{lab['port']} (")
    assert snapshot(lab["home"]) == before

    token = "t0k3n-" + "x" * 30
    proc, port = start_service(lab["home"], "--host", "0.0.0.0", env_extra={"ALMANAC_API_TOKEN": token})
    try:
        status, health = call(port, "GET", "/api/v1/health")
        assert status == 200 and health["token_required"] is True
        refused = "send the header 'Authorization: Bearer <token>' with the value of ALMANAC_API_TOKEN"
        for path in ("/api/v1/models", "/api/v1/openapi.json", f"/api/v1/models/{lab['runs']['lgbm']['run_id']}"):
            assert call(port, "GET", path) == (401, {"detail": f"missing token: {refused}"})
            assert call(port, "GET", path, headers={"Authorization": "Bearer nope"}) == \
                (401, {"detail": f"wrong token: {refused}"})
            assert call(port, "GET", path, headers={"Authorization": f"Bearer {token}"})[0] == 200
        body = {"symbol": "ES", "label": "rest_of_day",
                "rows": rows_of(lab["data"]["lgbm"].iloc[:1], lab["runs"]["lgbm"]["feature_names"])}
        assert call(port, "POST", "/api/v1/predict", body)[0] == 401
        assert call(port, "POST", "/api/v1/predict", body, headers={"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        assert stop_service(proc) in (0, 143)


def test_runs_activate_refuses_an_unknown_run(lab):
    env = {**os.environ, "ALMANAC_HOME": str(lab["home"])}
    before = snapshot(lab["home"])
    done = cli("runs", "activate", "20990101-000000-nope", env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: no run 20990101-000000-nope in {lab['home'].resolve() / 'runs'}: list the runs "
                           "with `python -m almanac runs list`\n")
    assert snapshot(lab["home"]) == before


def test_the_bench_load_counts_every_answer(lab):
    from bench.serve import load

    run = lab["runs"]["lgbm"]
    body = json.dumps({"run_id": run["run_id"], "rows": rows_of(lab["data"]["lgbm"].iloc[:1],
                                                                 run["feature_names"])}).encode()
    ok = load(lab["port"], [("POST", "/api/v1/predict", body)] * 40, clients=4)
    assert (ok["requests"], ok["errors"]) == (40, 0) and ok["app_p95_ms"] > 0
    bad = load(lab["port"], [("POST", "/api/v1/predict", b"{}")] * 8, clients=2, rate=100.0)
    assert (bad["requests"], bad["errors"]) == (8, 8) and bad["first_error"].startswith("422 ")
