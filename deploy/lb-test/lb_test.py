#!/usr/bin/env python3
"""The load-balancer test: nginx in front of three api-guard replicas, under steady load.

Starts, on 127.0.0.1 only: one development issuer (`api-guard --dev`), three replicas in
production mode that trust it, and nginx configured from deploy/nginx/api-guard.conf. A load
generator sends valid-token `GET /api/whoami` through nginx at a fixed rate while the test
  (a) restarts every replica in turn with SIGTERM,
  (b) kills one replica with SIGKILL and restarts it,
  (c) makes the issuer's JWKS endpoint answer 503 for a while.
It prints, per phase, requests sent, failed and the p99 latency. (a) and (c) must lose no
request; (b) reports its failures. Exit status: 0 when they hold, 1 when not, 2 when the set-up
itself failed.

The JWKS outage: the replicas fetch their keys through a second nginx server block (the "JWKS
gate") that proxies to the issuer, and answers 503 while a flag file exists (`if (-f ...)` is
checked on every request). That makes a real HTTP failure without touching the issuer, whose
signing key is random per process and must outlive the test, and without reloading the nginx
that carries the load. Each replica fetches under its own path prefix `/replica-N/`, so the gate's log
shows that every replica really refetched, and failed, during the outage.

Every process it starts is a child it keeps the PID of; on exit, on SIGTERM/SIGINT or on its
time limit it ends those PIDs and no others.

Environment: LB_TEST_REPLICA_BIN, LB_TEST_ISSUER_BIN (binaries; the issuer needs the
`dev-issuer` feature), LB_TEST_NGINX (the nginx binary), LB_TEST_RATE (requests per second, default
200), LB_TEST_KEEP (keep the temporary directory with every log).
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

TIME_LIMIT = 300.0  # seconds, for the whole test
RATE = int(os.environ.get("LB_TEST_RATE", "200"))
THREADS = 8
SHUTDOWN_TIMEOUT = 10  # SHUTDOWN_TIMEOUT_SECS given to the replicas
DRAIN = 1  # SHUTDOWN_DRAIN_SECS given to the replicas
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


class Processes:
    """The processes this test started, by PID; ends only those."""

    def __init__(self):
        self.children = []

    def start(self, argv, env, log_path, cwd):
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
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


class Replica:
    def __init__(self, index, binary, env, tmp, processes):
        self.index = index
        self.port = free_port()
        self.binary = binary
        self.env = dict(env, BIND_ADDR=f"127.0.0.1:{self.port}")
        self.env["AUTH_JWKS_URI"] = env["AUTH_JWKS_URI"].format(replica=index)
        self.log = os.path.join(tmp, f"replica-{index}.log")
        self.tmp = tmp
        self.processes = processes
        self.proc = None

    def start(self):
        self.proc = self.processes.start([self.binary], self.env, self.log, self.tmp)

    def wait_ready(self, within=30):
        def ready():
            if self.proc.poll() is not None:
                raise SetupError(
                    f"replica {self.index} exited with {self.proc.returncode}; see {self.log}"
                )
            return http_status(self.port, "/health/ready") == 200

        wait_for(f"replica {self.index} to be ready on port {self.port}", ready, within)

    def wait_routed(self, tmp, within=30):
        """Waits until nginx answers a request from this replica again. nginx has no active
        health checks: a replica that refused connections stays out of rotation for
        `fail_timeout` (10 s) even once it is ready, and taking the next replica down before
        then leaves nginx with "no live upstreams". A rolling restart behind open-source nginx
        must wait for this, as Kubernetes waits for the endpoint to be ready again."""
        offset = os.path.getsize(os.path.join(tmp, "nginx-access.log"))
        needle = f"upstream=127.0.0.1:{self.port} upstream_status=200 ".encode()

        def routed():
            nonlocal offset
            with open(os.path.join(tmp, "nginx-access.log"), "rb") as f:
                f.seek(offset)
                data = f.read()
            # Only whole lines: nginx may be halfway through writing the last one.
            whole = data[: data.rfind(b"\n") + 1]
            offset += len(whole)
            return needle in whole

        wait_for(f"nginx to route to replica {self.index} again", routed, within)

    def signal_and_wait(self, sig, within):
        """Sends `sig` and waits for the exit; returns the exit status and the seconds it took."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=min(within, max(remaining(), 1)))
        except subprocess.TimeoutExpired:
            raise SetupError(
                f"replica {self.index} still running {within}s after {sig.name}; see {self.log}"
            ) from None
        return code, time.monotonic() - sent


class Load:
    """An open-loop load at a fixed rate: THREADS threads, each with its own keep-alive
    connection to nginx, each sending at RATE/THREADS per second on a fixed schedule. Every
    request is filed under the phase current when it was sent."""

    def __init__(self, port, token):
        self.port = port
        self.token = token
        self.phase = "warm-up"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {}  # phase -> list of (ok, latency seconds, what)
        self.counter = 0
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(THREADS)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def wait_sent(self, phase, count):
        """Waits until `count` requests of `phase` have been answered or failed: the length of
        a measured phase is counted in requests."""
        wait_for(
            f"{count} requests in phase {phase}",
            lambda: len(self.results.get(phase, [])) >= count,
            count / RATE * 3 + 10,
        )

    def record(self, phase, ok, latency, what):
        with self.lock:
            self.results.setdefault(phase, []).append((ok, latency, what))

    def next_id(self, phase):
        with self.lock:
            self.counter += 1
            return f"lb-{phase}-{self.counter}"

    def run(self, index):
        interval = THREADS / RATE
        next_at = time.monotonic() + interval * index / THREADS
        conn = None
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                # Pacing of the load, not synchronisation: the rate is the point.
                self.stop.wait(delay)
                if self.stop.is_set():
                    break
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            phase = self.phase
            request_id = self.next_id(phase)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            sent = time.monotonic()
            try:
                conn.request(
                    "GET",
                    "/api/whoami",
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "X-Request-Id": request_id,
                    },
                )
                response = conn.getresponse()
                body = response.read()
                latency = time.monotonic() - sent
                ok = response.status == 200 and b'"sub"' in body
                what = f"{response.status} {request_id}"
            except (OSError, http.client.HTTPException) as error:
                latency = time.monotonic() - sent
                ok = False
                what = f"{type(error).__name__}: {error} {request_id}"
                conn.close()
                conn = None
            self.record(phase, ok, latency, what)
        if conn is not None:
            conn.close()


def p99(latencies):
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


def nginx_config(tmp, nginx_port, gate_port, issuer_port, replicas):
    """deploy/nginx/api-guard.conf with the three replicas, the listen address and the log
    moved to loopback and the temp dir, inside a main config of our own, plus the JWKS gate."""
    with open(NGINX_TEMPLATE) as f:
        site = f.read()
    for replica in replicas:
        site, n = re.subn(
            rf"\bapi-guard-{replica.index}:8080\b", f"127.0.0.1:{replica.port}", site
        )
        if n != 1:
            raise SetupError(f"{NGINX_TEMPLATE}: no single `server api-guard-{replica.index}:8080`")
    site, n = re.subn(r"\blisten 8080;", f"listen 127.0.0.1:{nginx_port};", site)
    if n != 1:
        raise SetupError(f"{NGINX_TEMPLATE}: no single `listen 8080;`")
    site = site.replace("/var/log/nginx/access.log", os.path.join(tmp, "nginx-access.log"))
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
error_log {tmp}/nginx-error.log warn;
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


def gate_log(tmp, offset=0):
    """The JWKS gate's log from byte `offset`: (replica, status) per fetch, and the new offset."""
    path = os.path.join(tmp, "jwks-gate.log")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    fetches = []
    for line in data.decode(errors="replace").splitlines():
        m = re.search(r'"GET /replica-(\d+)/[^"]*" (\d{3})$', line)
        if m:
            fetches.append((int(m.group(1)), int(m.group(2))))
    return fetches, offset + len(data)


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


def run(tmp, processes):
    replica_bin = os.environ["LB_TEST_REPLICA_BIN"]
    issuer_bin = os.environ["LB_TEST_ISSUER_BIN"]
    # Not NGINX: nginx itself reads that variable (inherited sockets).
    nginx = os.environ.get("LB_TEST_NGINX", "nginx")
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

    nginx_port, gate_port = free_port(), free_port()
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
        # The request log at 200 lines/s would dwarf what matters here: key fetches, shutdown.
        RUST_LOG="info,api_guard::request=warn",
    )
    replicas = [Replica(i, replica_bin, replica_env, tmp, processes) for i in (1, 2, 3)]

    conf, down_flag = nginx_config(tmp, nginx_port, gate_port, issuer_port, replicas)
    nginx_argv = [nginx, "-p", tmp + "/", "-c", conf, "-e", os.path.join(tmp, "nginx-error.log")]
    check = subprocess.run(
        nginx_argv + ["-t"], env=base_env, capture_output=True, text=True, timeout=30
    )
    print(f"== nginx -t (deploy/nginx/api-guard.conf on loopback ports)\n{check.stderr.strip()}")
    if check.returncode != 0:
        raise SetupError("nginx -t refused the configuration")
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
    token = mint_token(issuer_port)
    print(
        f"== issuer :{issuer_port}, replicas :{', :'.join(str(r.port) for r in replicas)}, "
        f"nginx :{nginx_port}, JWKS gate :{gate_port}; load {RATE} req/s from {THREADS} threads"
    )

    load = Load(nginx_port, token)
    load.start()
    notes = {}
    try:
        wait_for(
            "the first answer through nginx",
            lambda: any(ok for ok, _, _ in load.results.get("warm-up", [])),
            15,
        )
        load.phase = "steady"
        progress("steady load")
        load.wait_sent("steady", RATE * 5)

        load.phase = "a-sigterm"
        progress("(a) each replica in turn: SIGTERM, restart, ready, routed to again")
        for replica in replicas:
            code, took = replica.signal_and_wait(signal.SIGTERM, SHUTDOWN_TIMEOUT + DRAIN + 35)
            replica.start()
            replica.wait_ready()
            back = time.monotonic()
            replica.wait_routed(tmp)
            notes.setdefault("a-sigterm", []).append(
                f"replica {replica.index} exited {code} {took:.1f}s after SIGTERM; "
                f"nginx routed to it {time.monotonic() - back:.1f}s after it was ready"
            )

        # (b) under load for a while with the replica dead, so nginx must route around a
        # refused port, then again once it is back.
        load.phase = "b-sigkill"
        progress("(b) SIGKILL replica 2, 3 s of load without it, restart")
        code, _ = replicas[1].signal_and_wait(signal.SIGKILL, 10)
        load.wait_sent("b-sigkill", RATE * 3)
        replicas[1].start()
        replicas[1].wait_ready()
        replicas[1].wait_routed(tmp)
        notes["b-sigkill"] = [f"replica 2 killed ({code}), down for 3 s of load, restarted, routed to again"]

        load.phase = "c-jwks-down"
        progress("(c) the JWKS endpoint answers 503 until every replica has been refused")
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
        load.phase = "after"
        load.wait_sent("after", RATE * 2)
    finally:
        load.finish()

    return report(load, notes, *nginx_view(tmp, replicas))


def nginx_view(tmp, replicas):
    """From nginx's access log, per phase: how many requests it sent to more than one replica
    (a retry), and how many each replica answered."""
    retried, served = {}, {}
    ports = {f"127.0.0.1:{r.port}": r.index for r in replicas}
    pattern = re.compile(r"upstream=(.+) upstream_status=(\S+(?:, \S+)*) .* id=lb-([a-z0-9-]+)-\d+$")
    try:
        with open(os.path.join(tmp, "nginx-access.log")) as f:
            for line in f:
                m = pattern.search(line)
                if not m:
                    continue
                upstreams, phase = m.group(1).split(", "), m.group(3)
                if len(upstreams) > 1:
                    retried[phase] = retried.get(phase, 0) + 1
                by_replica = served.setdefault(phase, {1: 0, 2: 0, 3: 0})
                last = ports.get(upstreams[-1])
                if last:
                    by_replica[last] += 1
    except FileNotFoundError:
        pass
    return retried, served


def report(load, notes, retried, served):
    must_lose_none = {"a-sigterm", "c-jwks-down"}
    verdict_ok = True
    print(
        f"\n{'phase':<12} {'sent':>6} {'failed':>6} {'p99 ms':>8} {'max ms':>8} "
        f"{'retried':>8}  answered by replica 1/2/3"
    )
    for phase in ["steady", "a-sigterm", "b-sigkill", "c-jwks-down", "after"]:
        rows = load.results.get(phase, [])
        failed = [what for ok, _, what in rows if not ok]
        latencies = [latency for _, latency, _ in rows]
        worst = max(latencies) * 1000 if latencies else float("nan")
        by = served.get(phase, {})
        print(
            f"{phase:<12} {len(rows):>6} {len(failed):>6} {p99(latencies) * 1000:>8.1f} "
            f"{worst:>8.1f} {retried.get(phase, 0):>8}  "
            f"{by.get(1, 0)}/{by.get(2, 0)}/{by.get(3, 0)}"
        )
        for note in notes.get(phase, []):
            print(f"    {note}")
        for what in failed[:5]:
            print(f"    failed: {what}")
        if not rows:
            print(f"    FAIL: no request was sent during {phase}")
            verdict_ok = False
        if phase in must_lose_none and failed:
            print(f"    FAIL: {phase} must lose no request, lost {len(failed)}")
            verdict_ok = False
    print(
        "(failed: not a 200 with claims at the load generator; retried: requests nginx sent to "
        "a second replica, from its access log)"
    )
    print("PASS" if verdict_ok else "FAIL: a phase that must lose no request lost some")
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
    try:
        status = 0 if run(tmp, processes) else 1
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
    finally:
        signal.alarm(0)
        processes.stop_all()
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
