"""The security headers and CSP in headless Chromium.

The other browser tests fail on any console error, CSP violations included, so they
show the pages work under the policy. These show what each loosened source is for and
that the policy is enforced:

* 'unsafe-eval': plotly's WebGL traces (scattergl, used above 30,000 points) draw;
* img-src blob:: plotly's "Download plot as PNG" works;
* no 'unsafe-inline' for scripts: an injected inline script does not run.

A probe script must run as the page's own code (``page.evaluate`` is exempt from the
page's CSP), so it is served from the lab's origin by a route and added to the page.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser
TIMEOUT = 60_000
PROBE = """
window.__probe = {violations: []};
document.addEventListener('securitypolicyviolation',
  e => window.__probe.violations.push(e.violatedDirective + ' ' + e.blockedURI));
(function draw() {
  if (!window.Plotly) return setTimeout(draw, 100);
  const d = document.createElement('div');
  d.id = 'webgl-probe'; d.style.width = '600px'; d.style.height = '400px';
  document.body.appendChild(d);
  const x = [], y = [];
  for (let i = 0; i < 40000; i++) { x.push(Math.random()); y.push(Math.random()); }
  Plotly.newPlot(d, [{type: 'scattergl', mode: 'markers', x: x, y: y}])
    .then(() => { window.__probe.gl = d.innerText.includes('WebGL is not supported') ? 'no webgl' : 'drawn'; })
    .catch(e => { window.__probe.gl = 'error: ' + e; });
})();
"""


def inject(context, tag: bytes) -> None:
    """Serve ``/__probe.js`` from the lab's origin and add ``tag`` to every page (headers untouched)."""
    def handle(route):
        if route.request.url.endswith("/__probe.js"):
            return route.fulfill(body=PROBE, content_type="application/javascript")
        response = route.fetch()
        body = response.body()
        if route.request.resource_type == "document":
            body = body.replace(b"</footer>", tag + b"</footer>")
        route.fulfill(response=response, body=body)
    context.route("**/*", handle)


def test_every_page_response_carries_the_headers(page):
    response = page.goto("/data")
    headers = response.headers
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer" and headers["cross-origin-opener-policy"] == "same-origin"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_webgl_chart_and_png_export_work_under_the_policy(page, screenshot_dir):
    inject(page.context, b'<script src="/__probe.js"></script>')
    page.goto("/data")
    page.wait_for_function("() => window.__probe && window.__probe.gl", timeout=TIMEOUT)
    assert page.evaluate("window.__probe.gl") == "drawn"
    page.locator("#webgl-probe").screenshot(path=str(screenshot_dir / "security-webgl.png"))
    chart = page.locator("#data-graph .js-plotly-plot")
    chart.wait_for(timeout=TIMEOUT)
    chart.hover()
    with page.expect_download(timeout=TIMEOUT) as download:
        chart.locator('.modebar-btn[data-title="Download plot as a PNG"]').click()
    assert download.value.suggested_filename.endswith(".png")
    with open(download.value.path(), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert page.evaluate("window.__probe.violations") == []


def test_an_injected_inline_script_does_not_run(chromium, lab_server):
    context = chromium.new_context(base_url=lab_server.url)
    try:
        inject(context, b'<script>window.__inline = "ran";</script><script src="/__probe.js"></script>')
        errors = []
        pg = context.new_page()
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.goto("/")
        pg.wait_for_function("() => window.__probe !== undefined", timeout=TIMEOUT)
        pg.wait_for_selector("h1", timeout=TIMEOUT)  # Dash's own (hashed) inline scripts did run
        assert pg.evaluate("window.__inline") is None
        assert any("Content Security Policy" in e and "script-src" in e for e in errors), errors
    finally:
        context.close()
