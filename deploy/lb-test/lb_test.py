#!/usr/bin/env python3
"""The load-balancer test: nginx and HAProxy, side by side, in front of three api-guard
replicas, under steady load through each.

Starts, on 127.0.0.1 only: one development issuer (`api-guard --dev`), three replicas in
production mode that trust it, nginx configured from deploy/nginx/api-guard.conf (passive
health checks only) and HAProxy from deploy/haproxy/api-guard.cfg (active checks of
/health/ready). Both balancers front the same three replicas. A load generator sends, through
each balancer at a fixed rate, valid-token `GET /api/whoami` and `POST /api/echo` with a JSON
body (alternately, on keep-alive connections), while the test
  (a) restarts every replica in turn with SIGTERM, LB_TEST_ROLLING_RESTARTS times over
      (default 3: three rolling restarts),
  (b) kills one replica with SIGKILL and restarts it,
  (c) makes the issuer's JWKS endpoint answer 503 for a while.
A request counts as failed unless it is a 200 with the caller's claims (GET) or with the very
body it sent (POST): a 502 on a POST is a failure. It prints, per balancer and phase, requests
sent (POSTs among them), failed, the requests a replica reset or closed after the balancer had
sent them ("reset after send": from nginx's error log; from HAProxy's log, termination states
SH/SD), retries, p99 latency and which replica answered, then one `RESULT` line per balancer
for phase (a). Verdict: (a) and (c) lose no request behind either balancer, and behind HAProxy
no request is reset after it was sent (outside (b)); (b) reports its failures. Exit status: 0
when they hold, 1 when not, 2 when the set-up itself failed.

The JWKS outage: the replicas fetch their keys through a second nginx server block (the "JWKS
gate") that proxies to the issuer, and answers 503 while a flag file exists (`if (-f ...)` is
checked on every request). That makes a real HTTP failure without touching the issuer, whose
signing key is random per process and must outlive the test, and without reloading the nginx
that carries the load. Each replica fetches under its own path prefix `/replica-N/`, so the gate's log
shows that every replica really refetched, and failed, during the outage.

Every process it starts is a child it keeps the PID of; on exit, on SIGTERM/SIGINT or on its
time limit it ends those PIDs and no others.

Environment: LB_TEST_REPLICA_BIN, LB_TEST_ISSUER_BIN (binaries; the issuer needs the
`dev-issuer` feature), LB_TEST_NGINX and LB_TEST_HAPROXY (the balancers' binaries),
LB_TEST_RATE (requests per second through each balancer, default 200),
LB_TEST_ROLLING_RESTARTS (passes of phase (a), default 3), LB_TEST_CPU_QUOTA (a percentage of
one core that the three replicas share, through a cgroup of their own, as a Kubernetes CPU limit
would throttle them; root only; off by default), LB_TEST_KEEP (keep the temporary directory with
every log).
"""

import base64
import ctypes
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX_TEMPLATE = os.path.join(ROOT, "deploy", "nginx", "api-guard.conf")
HAPROXY_TEMPLATE = os.path.join(ROOT, "deploy", "haproxy", "api-guard.cfg")

ROLLING_RESTARTS = int(os.environ.get("LB_TEST_ROLLING_RESTARTS", "3"))
# Seconds, for the whole test: set-up and phases (b), (c) take about a minute, a rolling
# restart about 40 s (nginx keeps a restarted replica out for its fail_timeout, 10 s).
TIME_LIMIT = 150.0 + 60.0 * ROLLING_RESTARTS
RATE = int(os.environ.get("LB_TEST_RATE", "200"))  # per balancer
THREADS = 8  # per balancer
SHUTDOWN_TIMEOUT = 10  # SHUTDOWN_TIMEOUT_SECS given to the replicas
# SHUTDOWN_DRAIN_SECS given to the replicas: it must outlast HAProxy's detection of the 503
# from /health/ready (HAPROXY_INTER x fall 2), as in deploy/ (10 s > 2 s x 2).
DRAIN = 2
HAPROXY_INTER = "250ms"  # HAProxy's check interval here, instead of deploy/'s 2 s
POST_PAD = "x" * 512  # so that a POST carries a body of some size
BALANCERS = ("nginx", "haproxy")
JWKS_REFRESH = 2  # seconds: the replicas refetch their keys this often, so (c) is felt
OUTAGE = 12  # seconds of JWKS outage in (c), at least
DEV_CLIENT = ("api-guard-dev", "api-guard-dev-secret")

started_at = time.monotonic()


class SetupError(Exception):
    """The test could not be set up: not a verdict on the service."""


def remaining():
    return TIME_LIMIT - (time.monotonic() - started_at)


def wait_for(what, condition, within):
    """Polls `condition` every 50 ms until it is true, for at most `within` seconds (and never
    past the test's time limit). Raises SetupError naming `what` when it never becomes true."""
    deadline = time.monotonic() + min(within, max(remaining(), 0))
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SetupError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path, timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def progress(message):
    print(f"[{time.monotonic() - started_at:5.1f}s] {message}", flush=True)


def die_with_parent():
    """Child set-up: the kernel kills the child if this test process dies without cleaning up
    (PR_SET_PDEATHSIG), so nothing it started outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class CpuQuota:
    """A cgroup of this test's own whose CPU time is capped at `percent` % of one core (cgroup v2
    `cpu.max`, or v1 `cpu.cfs_quota_us`); the replicas are started inside it. Removed at the end
    (it is empty by then: every process in it was ended)."""

    PERIOD = 100_000  # microseconds, the kernel's default CFS period

    def __init__(self, percent):
        quota = int(self.PERIOD * percent / 100)
        name = f"api-guard-lb-{os.getpid()}"
        v2 = "/sys/fs/cgroup"
        v1 = "/sys/fs/cgroup/cpu"
        if os.path.exists(os.path.join(v2, "cgroup.controllers")):
            self.path = os.path.join(v2, name)
            settings = {"cpu.max": f"{quota} {self.PERIOD}"}
        elif os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
            self.path = os.path.join(v1, name)
            settings = {"cpu.cfs_period_us": str(self.PERIOD), "cpu.cfs_quota_us": str(quota)}
        else:
            raise SetupError("LB_TEST_CPU_QUOTA: no cgroup CPU controller found")
        try:
            os.mkdir(self.path)
            for key, value in settings.items():
                with open(os.path.join(self.path, key), "w") as f:
                    f.write(value)
        except OSError as error:
            raise SetupError(f"LB_TEST_CPU_QUOTA: cannot set up {self.path}: {error}") from None
        self.percent = percent

    def enter(self):
        """In the child, before exec: moves it into the cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def throttled(self):
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                stat = dict(line.split() for line in f if len(line.split()) == 2)
            return f"{stat.get('nr_throttled', '?')} of {stat.get('nr_periods', '?')} periods"
        except OSError:
            return "unknown"

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError as error:
            print(f"warning: could not remove {self.path}: {error}", file=sys.stderr)


class Processes:
    """The processes this test started, by PID; ends only those."""

    def __init__(self):
        self.children = []

    def start(self, argv, env, log_path, cwd, cgroup=None):
        log = open(log_path, "ab")

        def set_up():
            die_with_parent()
            if cgroup is not None:
                cgroup.enter()

        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=set_up,
        )
        log.close()
        self.children.append(proc)
        return proc

    def stop_all(self):
        for proc in self.children:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.children:
            if proc.poll() is None:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def read_new_lines(path, offset):
    """The whole lines of `path` from byte `offset` on, and the offset after them (a line still
    being written is left for the next call)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    whole = data[: data.rfind(b"\n") + 1]
    return whole.decode(errors="replace").splitlines(), offset + len(whole)


def file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class Replica:
    def __init__(self, index, binary, env, tmp, processes, cgroup=None):
        self.index = index
        self.cgroup = cgroup
        self.port = free_port()
        self.binary = binary
        self.env = dict(env, BIND_ADDR=f"127.0.0.1:{self.port}")
        self.env["AUTH_JWKS_URI"] = env["AUTH_JWKS_URI"].format(replica=index)
        self.log = os.path.join(tmp, f"replica-{index}.log")
        self.tmp = tmp
        self.processes = processes
        self.proc = None

    def start(self):
        self.proc = self.processes.start(
            [self.binary], self.env, self.log, self.tmp, self.cgroup
        )

    def wait_ready(self, within=30):
        def ready():
            if self.proc.poll() is not None:
                raise SetupError(
                    f"replica {self.index} exited with {self.proc.returncode}; see {self.log}"
                )
            return http_status(self.port, "/health/ready") == 200

        wait_for(f"replica {self.index} to be ready on port {self.port}", ready, within)

    def wait_exit(self, sig, sent, within):
        """Waits for the exit after `sig` was sent at `sent`; returns the exit status and the
        seconds it took."""
        try:
            code = self.proc.wait(timeout=min(within, max(remaining(), 1)))
        except subprocess.TimeoutExpired:
            raise SetupError(
                f"replica {self.index} still running {within}s after {sig.name}; see {self.log}"
            ) from None
        return code, time.monotonic() - sent


class Nginx:
    """nginx from deploy/nginx/api-guard.conf, plus the JWKS gate."""

    name = "nginx"

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.access_log = os.path.join(tmp, "nginx-access.log")
        self.error_log = os.path.join(tmp, "nginx-error.log")

    def routed_line(self, replica):
        return f"upstream=127.0.0.1:{replica.port} upstream_status=200 "

    def log_size(self):
        return file_size(self.access_log)

    def served(self, replicas):
        """From the access log, per phase: requests sent to more than one replica (a retry),
        and how many each replica answered."""
        retried, served = {}, {}
        ports = {f"127.0.0.1:{r.port}": r.index for r in replicas}
        pattern = re.compile(r"upstream=(.+) upstream_status=(\S+(?:, \S+)*) .* id=lb\.nginx\.([a-z0-9-]+)\.\d+$")
        lines, _ = read_new_lines(self.access_log, 0)
        for line in lines:
            m = pattern.search(line)
            if not m:
                continue
            upstreams, phase = m.group(1).split(", "), m.group(3)
            if len(upstreams) > 1:
                retried[phase] = retried.get(phase, 0) + 1
            last = ports.get(upstreams[-1])
            if last:
                by = served.setdefault(phase, {1: 0, 2: 0, 3: 0})
                by[last] += 1
        return retried, served

    def resets(self):
        """From the error log, per phase: the requests whose connection a replica reset or closed
        after nginx had sent (part of) them: `recv() failed (104: Connection reset by peer)` or
        `upstream prematurely closed connection` while reading the response header, or a
        failure while sending the request. Failed connection attempts (refused) are not counted:
        nothing was sent. One entry per failed attempt: "method id"."""
        after_send = re.compile(
            r"\[error\] .* while (reading response header from upstream|sending request to upstream|reading upstream)"
        )
        request = re.compile(r'request: "(\w+) [^"?]*\?lb=lb\.nginx\.([a-z0-9-]+)\.(\d+) ')
        found = {}
        lines, _ = read_new_lines(self.error_log, 0)
        for line in lines:
            m = request.search(line)
            if after_send.search(line) and m:
                found.setdefault(m.group(2), []).append(f"{m.group(1)} {m.group(3)}: {line[:160]}")
        return found


class HAProxy:
    """HAProxy from deploy/haproxy/api-guard.cfg: active checks of /health/ready."""

    name = "haproxy"
    LINE = re.compile(
        r" (\S+)/(\S+) \S+ (\d{3}) \S+ (\S{4}) \S+/\S+/\S+/\S+/(\+?\d+) "
        r'"(\w+) [^"?]*\?lb=lb\.haproxy\.([a-z0-9-]+)\.(\d+)[^"]*" id='
    )

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.log = os.path.join(tmp, "haproxy.log")

    def routed_line(self, replica):
        return f" api_guard/api-guard-{replica.index} "

    def log_size(self):
        return file_size(self.log)

    def entries(self):
        lines, _ = read_new_lines(self.log, 0)
        for line in lines:
            m = self.LINE.search(line)
            if m:
                yield m

    def served(self, replicas):
        retried, served = {}, {}
        for m in self.entries():
            phase = m.group(7)
            if m.group(5) not in ("0", "+0"):
                retried[phase] = retried.get(phase, 0) + 1
            server = re.fullmatch(r"api-guard-(\d)", m.group(2))
            if server:
                by = served.setdefault(phase, {1: 0, 2: 0, 3: 0})
                by[int(server.group(1))] += 1
        return retried, served

    def resets(self):
        """From the log, per phase: requests the replica closed or reset after HAProxy had sent
        them (termination state SH: before the answer's headers, SD: during its body)."""
        found = {}
        for m in self.entries():
            if m.group(4)[:2] in ("SH", "SD"):
                found.setdefault(m.group(7), []).append(
                    f"{m.group(6)} {m.group(8)}: {m.group(0).strip()[:160]}"
                )
        return found


class Load:
    """An open-loop load at a fixed rate through each balancer: THREADS threads per balancer,
    each with its own keep-alive connection, each sending at RATE/THREADS per second on a
    fixed schedule, a GET whoami and a POST echo in turn. Every request is filed under its
    balancer and the phase current when it was sent."""

    def __init__(self, ports, token):
        self.ports = ports  # balancer name -> port
        self.token = token
        self.phase = "warm-up"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {}  # (balancer, phase) -> list of (ok, latency seconds, method, what)
        self.counter = 0
        self.in_flight = {}  # (balancer, thread) -> the phase of its request in flight, or None
        self.threads = [
            threading.Thread(target=self.run, args=(name, i), daemon=True)
            for name in ports
            for i in range(THREADS)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def switch(self, phase):
        """Starts `phase` and returns once no request of the previous phase is in flight, so
        that what the next step does (a SIGKILL, say) befalls only requests of `phase`."""
        previous, self.phase = self.phase, phase
        wait_for(
            f"the requests of phase {previous} to finish",
            lambda: previous not in list(self.in_flight.values()),
            20,
        )
        progress(phase_titles.get(phase, phase))

    def count(self, phase):
        """Requests of `phase` answered or failed, through the balancer that has fewest."""
        with self.lock:
            return min(len(self.results.get((name, phase), [])) for name in self.ports)

    def wait_sent(self, phase, count):
        """Waits until `count` requests of `phase` have been answered or failed through each
        balancer: the length of a measured phase is counted in requests."""
        wait_for(
            f"{count} requests in phase {phase}",
            lambda: self.count(phase) >= count,
            count / RATE * 3 + 10,
        )

    def record(self, balancer, phase, ok, latency, method, what):
        with self.lock:
            self.results.setdefault((balancer, phase), []).append((ok, latency, method, what))

    def next_id(self, balancer, phase):
        with self.lock:
            self.counter += 1
            return f"lb.{balancer}.{phase}.{self.counter}"

    def send(self, conn, method, request_id):
        """One request; returns (ok, what)."""
        headers = {"Authorization": f"Bearer {self.token}", "X-Request-Id": request_id}
        if method == "GET":
            conn.request("GET", f"/api/whoami?lb={request_id}", headers=headers)
            response = conn.getresponse()
            body = response.read()
            return response.status == 200 and b'"sub"' in body, response.status
        sent = {"id": request_id, "items": list(range(20)), "pad": POST_PAD}
        headers["Content-Type"] = "application/json"
        conn.request("POST", f"/api/echo?lb={request_id}", body=json.dumps(sent), headers=headers)
        response = conn.getresponse()
        body = response.read()
        try:
            echoed = json.loads(body) == sent
        except ValueError:
            echoed = False
        return response.status == 200 and echoed, response.status

    def run(self, balancer, index):
        port = self.ports[balancer]
        interval = THREADS / RATE
        next_at = time.monotonic() + interval * index / THREADS
        conn = None
        n = index
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                # Pacing of the load, not synchronisation: the rate is the point.
                self.stop.wait(delay)
                if self.stop.is_set():
                    break
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            phase = self.phase
            request_id = self.next_id(balancer, phase)
            method = "POST" if n % 2 else "GET"
            n += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            self.in_flight[(balancer, index)] = phase
            sent = time.monotonic()
            try:
                ok, status = self.send(conn, method, request_id)
                what = f"{method} {status} {request_id}"
            except (OSError, http.client.HTTPException) as error:
                ok = False
                what = f"{method} {type(error).__name__}: {error} {request_id}"
                conn.close()
                conn = None
            self.record(balancer, phase, ok, time.monotonic() - sent, method, what)
            self.in_flight[(balancer, index)] = None
        if conn is not None:
            conn.close()


phase_titles = {
    "steady": "steady load",
    "a-sigterm": f"(a) {ROLLING_RESTARTS} rolling restart(s): each replica in turn: SIGTERM, "
    "restart, ready, routed to again by both balancers",
    "b-sigkill": "(b) SIGKILL replica 2, 3 s of load without it, restart",
    "c-jwks-down": "(c) the JWKS endpoint answers 503 until every replica has been refused",
    "after": "after: steady load again",
}


def p99(latencies):
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


def substitute(text, pattern, replacement, path, what):
    text, n = re.subn(pattern, replacement, text)
    if n != 1:
        raise SetupError(f"{path}: no single {what}")
    return text


def nginx_config(nginx, gate_port, issuer_port, replicas):
    """deploy/nginx/api-guard.conf with the three replicas, the listen address and the log
    moved to loopback and the temp dir, inside a main config of our own, plus the JWKS gate."""
    tmp = nginx.tmp
    with open(NGINX_TEMPLATE) as f:
        site = f.read()
    for replica in replicas:
        site = substitute(
            site, rf"\bapi-guard-{replica.index}:8080\b", f"127.0.0.1:{replica.port}",
            NGINX_TEMPLATE, f"`server api-guard-{replica.index}:8080`",
        )
    site = substitute(
        site, r"\blisten 8080;", f"listen 127.0.0.1:{nginx.port};", NGINX_TEMPLATE, "`listen 8080;`"
    )
    site = site.replace("/var/log/nginx/access.log", nginx.access_log)
    with open(os.path.join(tmp, "api-guard.conf"), "w") as f:
        f.write(site)

    # A root master would run its workers as `nobody`, who cannot read this 0700 temp dir.
    user = ""
    if os.geteuid() == 0:
        user = "user root;"
    down_flag = os.path.join(tmp, "jwks-down")
    main = f"""# Generated by deploy/lb-test/lb_test.py
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {nginx.error_log} warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    access_log off;

    include {tmp}/api-guard.conf;

    # The JWKS gate: the replicas' AUTH_JWKS_URI. 503 while {down_flag} exists.
    log_format gate '$msec "$request" $status';
    server {{
        listen 127.0.0.1:{gate_port};
        access_log {tmp}/jwks-gate.log gate;
        location / {{
            if (-f {down_flag}) {{
                return 503;
            }}
            rewrite ^/replica-[0-9]+(/.*)$ $1 break;
            proxy_pass http://127.0.0.1:{issuer_port};
        }}
    }}
}}
"""
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(main)
    return path, down_flag


def haproxy_config(haproxy, replicas):
    """deploy/haproxy/api-guard.cfg with the three replicas and `bind` moved to loopback and
    the check interval shortened to HAPROXY_INTER."""
    with open(HAPROXY_TEMPLATE) as f:
        cfg = f.read()
    for replica in replicas:
        cfg = substitute(
            cfg, rf"\bapi-guard-{replica.index}:8080\b", f"127.0.0.1:{replica.port}",
            HAPROXY_TEMPLATE, f"`server api-guard-{replica.index} api-guard-{replica.index}:8080`",
        )
    cfg = substitute(cfg, r"\bbind :8080\b", f"bind 127.0.0.1:{haproxy.port}", HAPROXY_TEMPLATE, "`bind :8080`")
    cfg = substitute(cfg, r"\binter 2s\b", f"inter {HAPROXY_INTER}", HAPROXY_TEMPLATE, "`inter 2s`")
    path = os.path.join(haproxy.tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def gate_log(tmp, offset=0):
    """The JWKS gate's log from byte `offset`: (replica, status) per fetch, and the new offset."""
    lines, offset = read_new_lines(os.path.join(tmp, "jwks-gate.log"), offset)
    fetches = []
    for line in lines:
        m = re.search(r'"GET /replica-(\d+)/[^"]*" (\d{3})$', line)
        if m:
            fetches.append((int(m.group(1)), int(m.group(2))))
    return fetches, offset


def mint_token(issuer_port):
    basic = base64.b64encode(":".join(DEV_CLIENT).encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{issuer_port}/oauth2/default/v1/token",
        data=b"grant_type=client_credentials&scope=AccessAll",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def wait_routed(balancers, replica, load, within=30):
    """Waits until each balancer answers, from `replica`, a request the load sent after this
    call (seen in its log; a request sent earlier may reach the new process too, through a
    connection attempt retried by the kernel). nginx has no active health checks: a replica that refused connections stays out
    of rotation for `fail_timeout` (10 s) even once it is ready, and taking the next replica
    down before then leaves nginx with "no live upstreams". A rolling restart behind
    open-source nginx must wait for this, as Kubernetes waits for the endpoint to be ready
    again; HAProxy takes it back after `rise` good checks."""
    waited = {}
    first = load.counter + 1  # request ids count up across balancers and phases
    for balancer in balancers:
        path = balancer.access_log if balancer.name == "nginx" else balancer.log
        needle = balancer.routed_line(replica)
        status = " 200 " if balancer.name == "haproxy" else ""
        offset = balancer.log_size()
        begun = time.monotonic()

        def routed():
            nonlocal offset
            lines, offset = read_new_lines(path, offset)
            for line in lines:
                m = re.search(r"id=lb\.\w+\.[a-z0-9-]+\.(\d+)$", line)
                if needle in line and status in line and m and int(m.group(1)) >= first:
                    return True
            return False

        wait_for(f"{balancer.name} to route to replica {replica.index} again", routed, within)
        waited[balancer.name] = time.monotonic() - begun
    return waited


def wait_haproxy_down(haproxy, replica, offset, within):
    """Seconds until HAProxy's log says it took `replica` out, or None if it did not within
    `within` seconds."""
    needle = f"Server api_guard/api-guard-{replica.index} is DOWN"
    begun = time.monotonic()
    deadline = begun + min(within, max(remaining(), 0))
    while time.monotonic() < deadline:
        lines, offset = read_new_lines(haproxy.log, offset)
        if any(needle in line for line in lines):
            return time.monotonic() - begun
        time.sleep(0.02)
    return None


def run(tmp, processes, cgroup):
    replica_bin = os.environ["LB_TEST_REPLICA_BIN"]
    issuer_bin = os.environ["LB_TEST_ISSUER_BIN"]
    # Not NGINX: nginx itself reads that variable (inherited sockets).
    nginx_bin = os.environ.get("LB_TEST_NGINX", "nginx")
    haproxy_bin = os.environ.get("LB_TEST_HAPROXY", "haproxy")
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "info"}

    issuer_port = free_port()
    issuer_env = dict(base_env, BIND_ADDR=f"127.0.0.1:{issuer_port}")
    issuer = processes.start(
        [issuer_bin, "--dev"], issuer_env, os.path.join(tmp, "issuer.log"), tmp
    )
    wait_for(
        "the issuer",
        lambda: issuer.poll() is None and http_status(issuer_port, "/health/ready") == 200,
        30,
    )
    issuer_url = f"http://127.0.0.1:{issuer_port}/oauth2/default"

    nginx, haproxy = Nginx(tmp), HAProxy(tmp)
    balancers = [nginx, haproxy]
    gate_port = free_port()
    replica_env = dict(
        base_env,
        AUTH_ISSUER=issuer_url,
        AUTH_AUDIENCE="api://default",
        AUTH_JWKS_URI=f"http://127.0.0.1:{gate_port}/replica-{{replica}}/oauth2/default/v1/keys",
        AUTH_JWKS_MIN_REFRESH_SECS=str(JWKS_REFRESH),
        AUTH_JWKS_MAX_REFRESH_SECS=str(JWKS_REFRESH),
        AUTH_JWKS_COOLDOWN_SECS="1",
        WORKERS="1",
        SHUTDOWN_TIMEOUT_SECS=str(SHUTDOWN_TIMEOUT),
        SHUTDOWN_DRAIN_SECS=str(DRAIN),
        KEEP_ALIVE_SECS="75",
        TRUSTED_PROXIES="127.0.0.1/32",
        LOG_FORMAT="text",
        # The verified-token cache off: the load repeats a few tokens, and with the cache on
        # phase (c) would be answered from it without the replicas' (stale) key sets.
        AUTH_TOKEN_CACHE_BYTES="0",
        # The request log at 400 lines/s would dwarf what matters here: key fetches, shutdown.
        RUST_LOG="info,api_guard::request=warn",
    )
    replicas = [Replica(i, replica_bin, replica_env, tmp, processes, cgroup) for i in (1, 2, 3)]

    conf, down_flag = nginx_config(nginx, gate_port, issuer_port, replicas)
    nginx_argv = [nginx_bin, "-p", tmp + "/", "-c", conf, "-e", nginx.error_log]
    check = subprocess.run(
        nginx_argv + ["-t"], env=base_env, capture_output=True, text=True, timeout=30
    )
    print(f"== nginx -t (deploy/nginx/api-guard.conf on loopback ports)\n{check.stderr.strip()}")
    if check.returncode != 0:
        raise SetupError("nginx -t refused the configuration")
    haproxy_cfg = haproxy_config(haproxy, replicas)
    haproxy_argv = [haproxy_bin, "-db", "-f", haproxy_cfg]
    check = subprocess.run(
        [haproxy_bin, "-c", "-f", haproxy_cfg], env=base_env, capture_output=True, text=True, timeout=30
    )
    print(
        f"== haproxy -c (deploy/haproxy/api-guard.cfg on loopback ports, inter {HAPROXY_INTER})\n"
        f"{(check.stdout + check.stderr).strip()}"
    )
    if check.returncode != 0:
        raise SetupError("haproxy -c refused the configuration")

    nginx_proc = processes.start(nginx_argv, base_env, os.path.join(tmp, "nginx.out"), tmp)
    wait_for(
        "nginx",
        lambda: nginx_proc.poll() is None and http_status(gate_port, "/replica-0/oauth2/default/v1/keys") == 200,
        15,
    )
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_ready()
    haproxy_proc = processes.start(haproxy_argv, base_env, haproxy.log, tmp)
    wait_for(
        "HAProxy",
        lambda: haproxy_proc.poll() is None and http_status(haproxy.port, "/health/live") == 200,
        15,
    )
    token = mint_token(issuer_port)
    print(
        f"== issuer :{issuer_port}, replicas :{', :'.join(str(r.port) for r in replicas)}, "
        f"nginx :{nginx.port}, HAProxy :{haproxy.port}, JWKS gate :{gate_port}; through each "
        f"balancer {RATE} req/s (GET whoami and POST echo in turn) from {THREADS} threads; "
        f"{ROLLING_RESTARTS} rolling restart(s) in (a)"
        + (f"; the replicas share {cgroup.percent:g} % of a core ({cgroup.path})" if cgroup else "")
    )

    load = Load({b.name: b.port for b in balancers}, token)
    load.start()
    notes = {}
    try:
        wait_for(
            "the first answers through nginx and HAProxy",
            lambda: all(
                any(ok for ok, _, _, _ in load.results.get((b.name, "warm-up"), []))
                for b in balancers
            ),
            15,
        )
        load.switch("steady")
        load.wait_sent("steady", RATE * 5)

        load.switch("a-sigterm")
        for rolling in range(1, ROLLING_RESTARTS + 1):
            for replica in replicas:
                sent = time.monotonic()
                replica.proc.send_signal(signal.SIGTERM)
                down = wait_haproxy_down(haproxy, replica, haproxy.log_size(), DRAIN + 3)
                code, took = replica.wait_exit(signal.SIGTERM, sent, SHUTDOWN_TIMEOUT + DRAIN + 35)
                replica.start()
                replica.wait_ready()
                back = wait_routed(balancers, replica, load)
                down_note = (
                    f"HAProxy took it out {down:.2f}s after SIGTERM"
                    if down is not None
                    else f"HAProxy did NOT take it out within {DRAIN + 3}s"
                )
                notes.setdefault("a-sigterm", []).append(
                    f"[{rolling}] replica {replica.index} exited {code} {took:.1f}s after SIGTERM "
                    f"(drain {DRAIN}s); {down_note}; routed to again {back['nginx']:.1f}s (nginx), "
                    f"{back['haproxy']:.1f}s (HAProxy) after it was ready"
                )
            progress(f"(a) rolling restart {rolling}/{ROLLING_RESTARTS} done")

        # (b) under load for a while with the replica dead, so the balancers must route around
        # a refused port, then again once it is back.
        load.switch("b-sigkill")
        sent = time.monotonic()
        replicas[1].proc.send_signal(signal.SIGKILL)
        code, _ = replicas[1].wait_exit(signal.SIGKILL, sent, 10)
        load.wait_sent("b-sigkill", RATE * 3)
        replicas[1].start()
        replicas[1].wait_ready()
        wait_routed(balancers, replicas[1], load)
        notes["b-sigkill"] = [f"replica 2 killed ({code}), down for 3 s of load, restarted, routed to again"]

        load.switch("c-jwks-down")
        _, offset = gate_log(tmp)
        open(down_flag, "w").close()
        outage_started = time.monotonic()
        refused = set()

        def every_replica_refused():
            nonlocal offset
            fetches, offset = gate_log(tmp, offset)
            refused.update(r for r, status in fetches if status == 503)
            return refused == {1, 2, 3} and time.monotonic() - outage_started >= OUTAGE

        wait_for("every replica to refetch during the JWKS outage", every_replica_refused, 60)
        still_ready = [http_status(r.port, "/health/ready") == 200 for r in replicas]
        os.remove(down_flag)
        reloaded = set()

        def every_replica_reloaded():
            nonlocal offset
            fetches, offset = gate_log(tmp, offset)
            reloaded.update(r for r, status in fetches if status == 200)
            return reloaded == {1, 2, 3}

        wait_for("every replica to reload keys after the outage", every_replica_reloaded, 60)
        notes["c-jwks-down"] = [
            f"JWKS answered 503 for {time.monotonic() - outage_started:.1f}s; every replica "
            f"refetched and was refused; /health/ready stayed 200 on "
            f"{sum(still_ready)}/3; all reloaded keys afterwards"
        ]
        load.switch("after")
        load.wait_sent("after", RATE * 2)
    finally:
        load.finish()

    if cgroup is not None:
        notes.setdefault("after", []).append(f"replicas throttled in {cgroup.throttled()}")
    return report(load, notes, balancers, replicas)


PHASES = ["steady", "a-sigterm", "b-sigkill", "c-jwks-down", "after"]


def report(load, notes, balancers, replicas):
    must_lose_none = {"a-sigterm", "c-jwks-down"}
    verdict_ok = True
    results = []
    for balancer in balancers:
        retried, served = balancer.served(replicas)
        resets = balancer.resets()
        print(
            f"\n== {balancer.name}\n{'phase':<12} {'sent':>6} {'POST':>6} {'failed':>6} "
            f"{'POST':>5} {'reset':>6} {'p99 ms':>8} {'max ms':>8} {'retried':>8}  "
            "answered by replica 1/2/3"
        )
        for phase in PHASES:
            rows = load.results.get((balancer.name, phase), [])
            posts = [row for row in rows if row[2] == "POST"]
            failed = [what for ok, _, _, what in rows if not ok]
            failed_posts = [what for ok, _, method, what in rows if not ok and method == "POST"]
            latencies = [latency for _, latency, _, _ in rows]
            worst = max(latencies) * 1000 if latencies else float("nan")
            reset = resets.get(phase, [])
            by = served.get(phase, {})
            print(
                f"{phase:<12} {len(rows):>6} {len(posts):>6} {len(failed):>6} "
                f"{len(failed_posts):>5} {len(reset):>6} {p99(latencies) * 1000:>8.1f} "
                f"{worst:>8.1f} {retried.get(phase, 0):>8}  "
                f"{by.get(1, 0)}/{by.get(2, 0)}/{by.get(3, 0)}"
            )
            if balancer is balancers[0]:
                for note in notes.get(phase, []):
                    print(f"    {note}")
            for what in failed[:5]:
                print(f"    failed: {what}")
            for what in reset[:5]:
                print(f"    reset after send: {what}")
            if not rows or not posts:
                print(f"    FAIL: no request (or no POST) was sent during {phase}")
                verdict_ok = False
            if phase in must_lose_none and failed:
                print(f"    FAIL: {phase} must lose no request, lost {len(failed)}")
                verdict_ok = False
            if balancer.name == "haproxy" and phase != "b-sigkill" and reset:
                print(f"    FAIL: behind HAProxy no request may be reset after it was sent; {len(reset)} were")
                verdict_ok = False
            if phase == "a-sigterm":
                results.append(
                    f"RESULT balancer={balancer.name} rolling_restarts={ROLLING_RESTARTS} "
                    f"replica_restarts={ROLLING_RESTARTS * len(replicas)} requests={len(rows)} "
                    f"posts={len(posts)} failed={len(failed)} failed_posts={len(failed_posts)} "
                    f"reset_after_send={len(reset)} "
                    f"reset_after_send_posts={sum(1 for r in reset if r.startswith('POST'))}"
                )
    print(
        "\n(failed: not a 200 with the claims (GET) or the body sent (POST) at the load generator; "
        "reset: requests a replica reset or closed after the balancer had sent them, from nginx's "
        "error log and HAProxy's log; retried: requests a balancer sent to a second replica, or "
        "HAProxy's connection retries, from their logs)"
    )
    print("\n".join(results))
    print("PASS" if verdict_ok else "FAIL: see the FAIL lines above")
    return verdict_ok


def main():
    for var in ("LB_TEST_REPLICA_BIN", "LB_TEST_ISSUER_BIN"):
        if not os.environ.get(var):
            print(f"error: set {var} to an api-guard binary (see .ci/lb-test)", file=sys.stderr)
            return 2
    tmp = tempfile.mkdtemp(prefix="api-guard-lb-")
    processes = Processes()

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(TIME_LIMIT) + 30)
    status = 2
    cgroup = None
    try:
        quota = os.environ.get("LB_TEST_CPU_QUOTA")
        cgroup = CpuQuota(float(quota)) if quota else None
        status = 0 if run(tmp, processes, cgroup) else 1
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
    finally:
        signal.alarm(0)
        processes.stop_all()
        if cgroup is not None:
            cgroup.remove()
        print(f"== took {time.monotonic() - started_at:.0f}s")
        if status != 0 or os.environ.get("LB_TEST_KEEP"):
            print(f"== logs kept in {tmp}")
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log") and status != 0:
                    path = os.path.join(tmp, name)
                    with open(path, errors="replace") as f:
                        tail = f.readlines()[-15:]
                    print(f"--- {name} (last lines)\n{''.join(tail)}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
