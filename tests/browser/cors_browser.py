#!/usr/bin/env python3
"""CORS in a real browser: Debian's headless Chromium against `api-guard --dev`.

Two pages are served on loopback, one from the origin CORS_ALLOWED_ORIGINS names and one from
another origin (another port). Each page calls api-guard with fetch(): whoami with a token,
whoami without one, whoami with a bad token, and hello, and writes what JavaScript could read
into the page. Chromium's --dump-dom hands the page back. From the allowed origin every call
must be readable (statuses, bodies and the 401's WWW-Authenticate); from the other origin the
browser must block every one (fetch() rejects with a TypeError).

Usage: cors_browser.py API_GUARD_BINARY [--cors-off]
  --cors-off  starts api-guard without CORS_ALLOWED_ORIGINS: the test must then fail.
"""

import base64
import http.server
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>api-guard CORS</title></head>
<body><pre id="result">pending</pre>
<script>
const api = %(api)s;
const token = %(token)s;
async function call(name, path, headers) {
  try {
    const response = await fetch(api + path, {headers});
    const body = await response.text();
    return {name, outcome: "read", status: response.status,
            wwwAuthenticate: response.headers.get("WWW-Authenticate"), body: body.slice(0, 300)};
  } catch (error) {
    return {name, outcome: "blocked", error: String(error)};
  }
}
(async () => {
  const results = [
    await call("whoami with a token", "/api/whoami", {"Authorization": "Bearer " + token}),
    await call("whoami without a token", "/api/whoami", {}),
    await call("whoami with a bad token", "/api/whoami", {"Authorization": "Bearer not.a.token"}),
    await call("hello", "/api/hello", {}),
  ];
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script></body></html>
"""


def serve_page(page):
    """Serves page["html"] (set later) at / on a free loopback port, in a thread."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = page["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_api_guard(binary, allowed_origin, workdir):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BIND_ADDR": "127.0.0.1:0",
        "RUST_LOG": "info",
    }
    if allowed_origin:
        env["CORS_ALLOWED_ORIGINS"] = allowed_origin
    process = subprocess.Popen(
        [binary, "--dev"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            process.kill()
            sys.exit("api-guard did not say where it listens within 30 s")
        if line is None:
            sys.exit("api-guard exited before listening")
        match = re.search(r"api-guard is listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return process, match.group(1)


def token_from(api):
    request = urllib.request.Request(
        f"{api}/oauth2/default/v1/token", data=b"grant_type=client_credentials&scope=AccessAll",
        headers={"Authorization": "Basic " + base64.b64encode(b"api-guard-dev:api-guard-dev-secret").decode(),
                 "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def dump_dom(chromium, url, profile):
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        "--dump-dom", url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    match = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    if not match or match.group(1) == "pending":
        sys.exit(f"no result in the page from {url}; chromium said:\n{done.stderr[-2000:]}")
    text = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def main():
    binary = sys.argv[1]
    cors_off = "--cors-off" in sys.argv[2:]
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        # The pages' servers are bound first: their origins go into CORS_ALLOWED_ORIGINS.
        page = {"html": ""}
        allowed_page = serve_page(page)
        other_page = serve_page(page)
        allowed_origin = f"http://127.0.0.1:{allowed_page.server_address[1]}"
        other_origin = f"http://127.0.0.1:{other_page.server_address[1]}"
        process, api = start_api_guard(binary, None if cors_off else allowed_origin, workdir)
        try:
            # The page cannot fetch a token itself: the development issuer never answers
            # cross-origin. The test hands it one, as an app's back end would.
            token = token_from(api)
            page["html"] = PAGE % {"api": json.dumps(api), "token": json.dumps(token)}
            print(f"api-guard --dev at {api}, CORS_ALLOWED_ORIGINS={'(unset)' if cors_off else allowed_origin}")
            for origin, expect_readable in ((allowed_origin, True), (other_origin, False)):
                results = dump_dom(chromium, origin + "/", os.path.join(workdir, "profile-" + origin[-5:]))
                label = "allowed" if expect_readable else "other"
                for result in results:
                    shown = (f"{result['status']} WWW-Authenticate={result['wwwAuthenticate']!r} body={result['body'][:80]!r}"
                             if result["outcome"] == "read" else result["error"])
                    print(f"  {label:7} {origin}  {result['name']:24} {result['outcome']:7} {shown}")
                failures += check(results, expect_readable, origin)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            allowed_page.shutdown()
            other_page.shutdown()
    passed = 8 - len(failures)
    for failure in failures:
        print("FAILED:", failure)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def check(results, expect_readable, origin):
    """One failure message per call whose outcome is wrong."""
    failures = []
    by_name = {r["name"]: r for r in results}
    if not expect_readable:
        for name, result in by_name.items():
            if result["outcome"] != "blocked":
                failures.append(f"{origin}: {name} was readable from a disallowed origin: {result}")
        return failures
    expectations = {
        "whoami with a token": lambda r: r["status"] == 200 and '"client_id"' in r["body"],
        "whoami without a token": lambda r: r["status"] == 401 and (r["wwwAuthenticate"] or "").startswith("Bearer realm="),
        "whoami with a bad token": lambda r: r["status"] == 401 and 'error="invalid_token"' in (r["wwwAuthenticate"] or ""),
        "hello": lambda r: r["status"] == 200 and len(r["body"]) > 0,
    }
    for name, ok in expectations.items():
        result = by_name.get(name)
        if result is None or result["outcome"] != "read" or not ok(result):
            failures.append(f"{origin}: {name}: {result}")
    return failures


if __name__ == "__main__":
    main()
