"""Render report.html in headless Chromium (Debian's package, installed by .ci/chromium.sh).

A probe script is inserted at the top of a *copy* of the page (before its CSP, which forbids
scripts): it records load errors, CSP violations, console errors and alert() calls, and on
``load`` writes what it saw into the DOM, which ``--dump-dom`` prints. Chromium's own console
log (``--enable-logging=stderr``) is checked too. Fails, not skips, under CI without Chromium.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tuneproof.report import SECTIONS, build_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--enable-logging=stderr", "--v=0", "--dump-dom"]  # fmt: skip
PROBE = """<script>
window.__probe = {errors: [], alerts: []};
window.alert = function (m) { window.__probe.alerts.push(String(m)); };
var _err = console.error;
console.error = function () { window.__probe.errors.push('console.error: ' + Array.from(arguments).join(' ')); _err.apply(console, arguments); };
window.addEventListener('error', function (ev) {
  var t = ev.target;
  window.__probe.errors.push(t && t !== window && t.tagName ? 'failed to load ' + t.tagName : 'error: ' + ev.message);
}, true);
document.addEventListener('securitypolicyviolation', function (ev) {
  window.__probe.errors.push('CSP blocked ' + ev.violatedDirective + ' ' + ev.blockedURI);
});
window.addEventListener('load', function () {
  var r = {
    sections: Array.from(document.querySelectorAll('section')).map(function (s) { return s.id; }),
    images: Array.from(document.images).map(function (i) { return {alt: i.alt, width: i.naturalWidth, complete: i.complete}; }),
    scripts: document.scripts.length, errors: window.__probe.errors, alerts: window.__probe.alerts
  };
  var pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    path = os.environ.get("TUNEPROOF_CHROMIUM") or shutil.which("chromium")
    if path and Path(path).is_file():
        return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing under CI: run `eval \"$(.ci/chromium.sh)\"` (Debian's chromium package) first")
    pytest.skip("Chromium not installed (install it with .ci/chromium.sh, or set TUNEPROOF_CHROMIUM)")


def render(page: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """Open a probed copy of ``page`` in headless Chromium: (probe result, console log lines)."""
    probed = page.replace("<head>", "<head>" + PROBE, 1)
    assert probed != page
    probed_path = tmp_path / "probed.html"
    probed_path.write_text(probed, encoding="utf-8")
    profile = tmp_path / "profile"
    proc = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={profile}", probed_path.as_uri()],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe result in Chromium's DOM dump (rc {proc.returncode}); stderr tail:\n{proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(m.group(1))), console


def test_report_renders_with_every_section_images_and_no_console_error(run_dir, tmp_path):
    page = build_report(run_dir).read_text(encoding="utf-8")
    result, console = render(page, tmp_path)
    assert result["sections"] == list(SECTIONS)
    assert len(result["images"]) == 5
    for img in result["images"]:
        assert img["complete"] and img["width"] > 0, img
    assert result["errors"] == [] and console == []
    assert result["alerts"] == []  # the <script>alert(1)</script> record stayed text
    assert result["scripts"] == 1  # only the probe


def test_the_probe_sees_broken_images_console_errors_and_scripts(tmp_path):
    # The harness itself can fail: a page with a broken image, a console error and an
    # injected script (blocked by the report's CSP) must be reported as such.
    from tuneproof.report._html import CSP

    page = (f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head><body>'
            '<section id="x"></section><img alt="bad" src="data:image/png;base64,AAAA">'
            "<script>alert(1)</script></body></html>")  # fmt: skip
    result, console = render(page, tmp_path)
    assert result["sections"] == ["x"]
    assert result["images"] == [{"alt": "bad", "width": 0, "complete": True}]
    assert any(e.startswith("failed to load IMG") for e in result["errors"]), result["errors"]
    # The blocked script: Chromium logs the violation to its console (the event itself may
    # arrive after load, so the probe need not see it), and alert() never ran.
    assert any("Content Security Policy" in line for line in console), console
    assert result["alerts"] == [] and result["scripts"] == 2
