"""The web server's hardening: Host allow-list, request-size bound, security headers and
CSP, SIGTERM stopping like Ctrl-C, and the 127.0.0.1 / debug-off defaults.

The rules of :mod:`almanac.web_security` are checked as plain functions; the Flask hooks
of ``app.harden`` on a bare Flask app (any settings) and on the lab's own app (Flask's
test client); then ``python app.py`` runs as its own process for forged ``Host``
headers over a real socket, an oversized body, the bind address and the signals.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from almanac import web_security
from almanac.settings import Limits, Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cross-Origin-Opener-Policy": "same-origin"}
START_TIMEOUT_S = 120


def settings(tmp_path, **kw) -> Settings:
    return Settings(home=tmp_path, **kw)


# ----------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("header,name", [
    ("localhost", "localhost"), ("LocalHost:8050", "localhost"), ("127.0.0.1:1", "127.0.0.1"),
    ("[::1]:8050", "::1"), ("[::1]", "::1"), ("localhost.", "localhost"), ("lab.example:443", "lab.example"),
    ("", None), (":8050", None), ("localhost:", None), ("localhost:80a", None), ("::1", None), ("[::1", None),
    ("[::1]x", None), ("[::1]:", None), ("a:1:2", None),
])
def test_host_name(header, name):
    assert web_security.host_name(header) == name


@pytest.mark.parametrize("header", ["localhost", "localhost:8050", "127.0.0.1:8050", "[::1]:8050", "LOCALHOST.",
                                    "lab.example", "lab.example:8443", "LAB.EXAMPLE"])
def test_loopback_and_allowed_hosts_are_served(tmp_path, header):
    assert web_security.host_refusal(header, settings(tmp_path, allowed_hosts=("lab.example",))) is None


@pytest.mark.parametrize("header", ["evil.example", "evil.example:8050", "localhost.evil.example",
                                    "127.0.0.1.nip.io", "lab.example.evil.example", "user@localhost", "0.0.0.0",
                                    "192.168.1.5:8050", "", None, "::1", "localhost:abc"])
def test_other_hosts_are_refused_with_one_line_naming_the_setting(tmp_path, header):
    message = web_security.host_refusal(header, settings(tmp_path, port=8123, allowed_hosts=("lab.example",)))
    assert message is not None and "\n" not in message and len(message) <= 300
    assert message.endswith("open the lab at http://127.0.0.1:8123/ or add the host name to ALMANAC_ALLOWED_HOSTS")


def test_the_configured_host_is_served(tmp_path):
    s = settings(tmp_path, host="0.0.0.0")
    assert web_security.host_refusal("0.0.0.0:8050", s) is None
    assert web_security.host_refusal("192.168.1.5:8050", s) is not None  # listed in ALMANAC_ALLOWED_HOSTS or refused
    assert web_security.host_refusal("192.168.1.5", settings(tmp_path, host="192.168.1.5")) is None


def test_a_hostile_host_header_is_cut_in_the_message(tmp_path):
    message = web_security.host_refusal("x" * 5000 + "\r\nSet-Cookie: a=b", settings(tmp_path))
    assert len(message) < 300 and "\n" not in message and "\r" not in message


def test_allowed_hosts_and_defaults_come_from_the_environment(monkeypatch, tmp_path):
    for var in ("HOST", "PORT", "ALMANAC_DEBUG", "ALMANAC_ALLOWED_HOSTS", "ALMANAC_MAX_UPLOAD_MB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path))
    s = get_settings()
    assert (s.host, s.port, s.debug, s.allowed_hosts) == ("127.0.0.1", 8050, False, ())
    monkeypatch.setenv("ALMANAC_ALLOWED_HOSTS", " Lab.Example , ,lab2.example:8443")
    assert web_security.allowed_hosts(get_settings()) == {"localhost", "127.0.0.1", "::1", "lab.example",
                                                          "lab2.example"}


def test_the_request_bound_holds_a_base64_upload_at_the_limit():
    limits = Limits(upload_bytes=3 * 2**20)
    body = json.dumps({"inputs": [{"id": "data-upload", "property": "contents",
                                   "value": "data:text/csv;base64," + base64.b64encode(b"x" * limits.upload_bytes).decode()},
                                  {"id": "data-upload", "property": "filename", "value": "f" * 255 + ".csv"}]})
    assert len(body) < web_security.max_request_bytes(limits) < 4 * limits.upload_bytes // 3 + 2 * 2**20
    for size in (1, 2, 3, 4, 1000, 3 * 2**20 + 1):
        assert (web_security.max_request_bytes(Limits(upload_bytes=size))
                == len(base64.b64encode(b"x" * size)) + web_security.REQUEST_MARGIN_BYTES)
    message = web_security.too_large_message(limits)
    assert message == "request body too large: uploads are limited to 3 MB; set ALMANAC_MAX_UPLOAD_MB to change the limit"


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_the_policy_allows_no_inline_script_and_no_framing():
    policy = directives(web_security.content_security_policy(["'sha256-abc='"]))
    assert policy["script-src"] == ["'self'", "'unsafe-eval'", "'sha256-abc='"]  # no 'unsafe-inline'
    assert policy["default-src"] == ["'self'"] and policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert set(policy["img-src"]) == {"'self'", "data:", "blob:"}
    assert not any("http" in s or s == "*" for sources in policy.values() for s in sources)  # nothing off-machine


# ----------------------------------------------------------------------------- the hooks
@pytest.fixture(scope="module")
def app_module(page_module):
    return sys.modules["app"]


@pytest.fixture
def bare(app_module, tmp_path):
    """A bare Flask app with the lab's hooks: 1 MB uploads, one extra allowed host."""
    import flask

    server = flask.Flask("bare")
    server.add_url_rule("/", "index", lambda: "hello")
    server.add_url_rule("/echo", "echo", lambda: str(len(flask.request.get_data())), methods=["POST"])
    s = settings(tmp_path, limits=Limits(upload_bytes=2**20), allowed_hosts=("lab.example",))
    app_module.harden(server, s, lambda: ["'sha256-abc='"])
    return server.test_client()


def assert_hardened(response):
    for name, value in HEADERS.items():
        assert response.headers[name] == value, name
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    return policy


def test_hooks_refuse_foreign_hosts_with_plain_text_and_headers(bare):
    for host in ("localhost:8050", "127.0.0.1", "[::1]:9", "lab.example"):
        ok = bare.get("/", headers={"Host": host})
        assert ok.status_code == 200 and ok.text == "hello"
        assert_hardened(ok)
    refused = bare.get("/", headers={"Host": "rebind.attacker.example:8050"})
    assert refused.status_code == 400 and refused.mimetype == "text/plain"
    assert refused.text.startswith("Host 'rebind.attacker.example:8050' is not served here: ")
    assert refused.text.count("\n") == 1
    assert_hardened(refused)
    assert bare.post("/echo", data=b"x", headers={"Host": "evil.example"}).status_code == 400


def test_hooks_bound_the_body(bare):
    bound = web_security.max_request_bytes(Limits(upload_bytes=2**20))
    assert bare.post("/echo", data=b"x" * bound).text == str(bound)
    big = bare.post("/echo", data=b"x" * (bound + 1))
    assert big.status_code == 413 and big.mimetype == "text/plain"
    assert big.text == ("request body too large: uploads are limited to 1 MB; "
                        "set ALMANAC_MAX_UPLOAD_MB to change the limit\n")
    assert_hardened(big)


def test_a_chunked_body_is_read_no_further_than_the_bound(bare):
    """No Content-Length to refuse up front: Werkzeug stops reading at the bound (the
    truncated JSON of a callback then fails to parse), so memory stays bounded."""
    import io

    bound = web_security.max_request_bytes(Limits(upload_bytes=2**20))
    r = bare.post("/echo", input_stream=io.BytesIO(b"x" * (bound + 2**20)), headers={"Transfer-Encoding": "chunked"},
                  environ_overrides={"wsgi.input_terminated": True})  # as Werkzeug's server passes a chunked body
    assert r.status_code == 200 and r.text == str(bound)
    assert_hardened(r)


def test_hooks_run_before_the_lab_own_hooks(app_module):
    first = app_module.server.before_request_funcs[None][0]
    assert first.__qualname__ == "harden.<locals>.check_request"


class _Scripts(html.parser.HTMLParser):
    """The text of every executable inline <script> (no src, JavaScript type)."""

    def __init__(self):
        super().__init__()
        self.found, self._current = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and "src" not in a and a.get("type", "text/javascript") in ("text/javascript",
                                                                                       "application/javascript"):
            self._current = ""

    def handle_data(self, data):
        if self._current is not None:
            self._current += data

    def handle_endtag(self, tag):
        if tag == "script" and self._current is not None:
            self.found.append(self._current)
            self._current = None


def test_the_lab_pages_carry_the_headers_and_a_hash_for_each_inline_script(app_module):
    client = app_module.server.test_client()
    for path in ("/", "/data", "/models"):
        page = client.get(path)
        assert page.status_code == 200
        policy = assert_hardened(page)
        parser = _Scripts()
        parser.feed(re.sub(r"<!--.*?-->", "", page.text, flags=re.S))  # IE-only comment scripts never run
        hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                  for s in parser.found}
        assert len(hashes) >= 2  # the renderer, and the page-title script the pages plugin adds at first request
        assert hashes <= set(policy["script-src"]), path
        assert "'unsafe-inline'" not in policy["script-src"]
    for path in ("/_dash-layout", "/_dash-dependencies", "/assets/almanac.css", "/no-such-file.js"):
        assert_hardened(client.get(path))
    callback = client.post("/_dash-update-component", data=b"{not json", content_type="application/json")
    assert callback.status_code >= 400
    assert_hardened(callback)
    assert client.get("/assets/almanac.css", headers={"Host": "evil.example"}).status_code == 400
    assert app_module.server.config["MAX_CONTENT_LENGTH"] == web_security.max_request_bytes(get_settings().limits)


# ----------------------------------------------------------------------------- python app.py
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_home(path: Path) -> Path:
    """A data home holding one tiny dataset, so the app starts without writing the sample data."""
    from almanac.store import Store

    path.mkdir(parents=True)
    days = pd.bdate_range("2020-01-06", periods=5)
    Store(path).write("ES", "1d", pd.DataFrame({"date": days, "open": 1.0, "high": 2.0, "low": 0.5,
                                                "close": 1.5, "volume": 10.0}), source="test")
    return path


def lab_env(home: Path, port: int, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "ALMANAC_DEBUG", "ALMANAC_ALLOWED_HOSTS")}
    return {**env, "ALMANAC_HOME": str(home), "PORT": str(port), "PYTHONUNBUFFERED": "1", **extra}


def wait_until_served(proc: subprocess.Popen, url: str, log: Path) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"the app did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(15)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``python app.py`` with default HOST and debug, uploads limited to 1 MB, one extra host."""
    base = tmp_path_factory.mktemp("web")
    home = small_home(base / "home")
    port = free_port()
    log = base / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                env=lab_env(home, port, ALMANAC_ALLOWED_HOSTS="lab.example",
                                            ALMANAC_MAX_UPLOAD_MB="1"))
    try:
        wait_until_served(proc, f"http://127.0.0.1:{port}/", log)
        yield {"proc": proc, "port": port, "log": log, "home": home}
    finally:
        stop(proc)


def get(port: int, host: str, path: str = "/") -> tuple[int, dict, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_served_on_loopback_with_debug_off_by_default(lab):
    port = lab["port"]
    assert f"serving Almanac ML Lab on http://127.0.0.1:{port} (debug off)" in lab["log"].read_text()
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                listening.add(local.rsplit(":", 1)[0])
    assert listening == {"0100007F"}  # 127.0.0.1 only, not 0.0.0.0 nor any other interface
    status, _, body = get(port, f"127.0.0.1:{port}", "/_dash-layout")
    assert status == 200 and "Traceback" not in body and "Werkzeug Debugger" not in body


def test_a_forged_host_gets_400_over_a_real_socket(lab):
    port = lab["port"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "lab.example"):
        status, headers, _ = get(port, host)
        assert status == 200, host
        assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    for host in ("rebind.attacker.example", f"rebind.attacker.example:{port}", "127.0.0.1.nip.io"):
        for path in ("/", "/_dash-layout", "/assets/almanac.css"):
            status, headers, body = get(port, host, path)
            assert status == 400 and headers["Content-Type"].startswith("text/plain"), (host, path)
            assert body == (f"Host {host!r} is not served here: open the lab at http://127.0.0.1:{port}/ "
                            "or add the host name to ALMANAC_ALLOWED_HOSTS\n")
            assert headers["X-Content-Type-Options"] == "nosniff"


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def test_an_oversized_body_gets_413_before_it_is_read(lab):
    """200 MB announced: the answer comes while a few MB are sent, and the server's peak
    memory does not grow by the body."""
    port, pid = lab["port"], lab["proc"].pid
    before = peak_rss_kb(pid)
    announced = 200 * 2**20
    head = (f"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {announced}\r\n\r\n").encode()
    chunk = b"x" * 2**16
    sent, answer = 0, b""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.setblocking(False)
        while b"\r\n\r\n" not in answer and time.monotonic() - t0 < 10:
            try:
                sent += s.send(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            try:
                answer += s.recv(65536)
            except BlockingIOError:
                pass
        seconds = time.monotonic() - t0
        s.setblocking(True)
        s.settimeout(5)
        while b"ALMANAC_MAX_UPLOAD_MB" not in answer:  # the body may follow the headers later
            try:
                more = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not more:
                break
            answer += more
    status_line = answer.split(b"\r\n", 1)[0]
    print(f"\n413 after {seconds * 1000:.0f} ms with {sent / 2**20:.1f} MB of {announced / 2**20:.0f} MB sent; "
          f"server peak RSS {before / 1024:.0f} -> {peak_rss_kb(pid) / 1024:.0f} MB")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"uploads are limited to 1 MB; set ALMANAC_MAX_UPLOAD_MB" in answer
    assert sent < announced / 4  # refused long before the body arrived
    assert peak_rss_kb(pid) - before < 50 * 1024
    # the server still serves
    assert get(port, f"127.0.0.1:{port}")[0] == 200


def test_a_body_within_the_bound_reaches_dash(lab):
    port = lab["port"]
    body = b"x" * (2 * 2**20)  # over the 1 MB upload, under its base64 size plus margin
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_dash-update-component", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:  # not a callback: Dash refuses it, Flask's bound does not
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code != 413 and b"too large" not in refused.value.read()


JOB_SCRIPT = """
import pathlib, sys, threading, time
import multiprocess
import app

marker, pid_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def job():  # a background job: no signal handling of its own
    marker.write_text("running")
    try:
        while True:
            time.sleep(0.05)
    finally:
        marker.write_text("cleaned up")

def start_job():  # as Dash does: forked from a server thread once the server runs
    time.sleep(0.5)
    child = multiprocess.Process(target=job)
    child.start()
    pid_file.write_text(str(child.pid))

threading.Thread(target=start_job, daemon=True).start()
app.main()
"""


def _ignore_sigint() -> None:  # as a shell starts a background command (`python app.py &` in a script)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig,started", [(signal.SIGTERM, None), (signal.SIGINT, None),
                                         (signal.SIGTERM, _ignore_sigint)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-sigint-ignored"])
def test_sigterm_stops_the_server_and_its_jobs_like_sigint(tmp_path, sig, started):
    home = small_home(tmp_path / "home")
    marker, child_pid, log = tmp_path / "job.txt", tmp_path / "job.pid", tmp_path / "app.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, str(marker), str(child_pid)], cwd=ROOT,
                                env=lab_env(home, port), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=started)
    try:
        wait_until_served(proc, f"http://127.0.0.1:{port}/", log)
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text() == "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "running"
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(30)
        seconds = time.monotonic() - t0
    finally:
        stop(proc)
    text = log.read_text()
    print(f"\n{sig.name}: exit {code} after {seconds:.1f} s")
    assert code == 0, text[-3000:]
    assert marker.read_text() == "cleaned up"  # the job's finally ran
    assert not Path(f"/proc/{child_pid.read_text()}").exists() or \
        "zombie" in Path(f"/proc/{child_pid.read_text()}/status").read_text().lower()
    assert f"stopping background job {child_pid.read_text()}" in text
    assert text.rstrip().splitlines()[-1].endswith("almanac.app: stopped")


def test_check_bind_needs_a_token_off_loopback():
    from almanac.errors import AlmanacError
    from almanac.web_security import check_bind, is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "0.0.0.0", "::",
                                     "192.0.2.7", "lab.example")] == [True, True, True, True, True, False, False,
                                                                      False, False]
    assert check_bind("127.0.0.1", None) is None and check_bind("127.0.0.1", "  ") is None
    token = "x" * 16
    assert check_bind("0.0.0.0", token) == token and check_bind("127.0.0.1", token) == token
    with pytest.raises(AlmanacError, match=r"^refusing to serve on 0\.0\.0\.0 without ALMANAC_API_TOKEN: "):
        check_bind("0.0.0.0", None)
    with pytest.raises(AlmanacError, match=r"^ALMANAC_API_TOKEN has 15 characters: use at least 16"):
        check_bind("0.0.0.0", "y" * 15)
