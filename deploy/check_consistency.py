#!/usr/bin/env python3
"""The rules that tie the deploy/ files together, which no schema can see (README, Deploy):

- the grace period outlasts the whole shutdown: preStop sleep + shutdown timeout (which counts
  from the signal and includes the drain), and the drain is shorter than the timeout;
- the replicas' keep-alive outlasts nginx's idle upstream connections;
- probes: /health/ready for routing, /health/live for restarts;
- HAProxy (deploy/haproxy/) probes /health/ready, notices a draining replica (inter x fall)
  within the default SHUTDOWN_DRAIN_SECS, and never replays a request it sent (no `retry-on`);
- the image leaves the development issuer out and runs as a numeric non-root user.

Run by .ci/deploy-validate with PyYAML; prints one line per rule and exits 1 if one fails.
"""

import glob
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(ok, rule):
    print(f"{'ok  ' if ok else 'FAIL'} {rule}")
    if not ok:
        failures.append(rule)


def load(*path):
    with open(os.path.join(HERE, *path)) as f:
        return yaml.safe_load(f)


def seconds(value):
    m = re.fullmatch(r"(\d+)s?", str(value).strip())
    if not m:
        raise SystemExit(f"error: `{value}` is not a number of seconds")
    return int(m.group(1))


config = load("kubernetes", "configmap.yaml")["data"]
pod = load("kubernetes", "deployment.yaml")["spec"]["template"]["spec"]
container = pod["containers"][0]
grace = pod["terminationGracePeriodSeconds"]
sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
drain, timeout = seconds(config["SHUTDOWN_DRAIN_SECS"]), seconds(config["SHUTDOWN_TIMEOUT_SECS"])
check(
    grace > sleep + timeout and drain < timeout,
    f"kubernetes: terminationGracePeriodSeconds {grace} > preStop {sleep} + timeout {timeout}, drain {drain} < timeout",
)
check(
    container["readinessProbe"]["httpGet"]["path"] == "/health/ready",
    "kubernetes: readiness probes /health/ready",
)
check(
    container["livenessProbe"]["httpGet"]["path"] == "/health/live",
    "kubernetes: liveness probes /health/live",
)

with open(os.path.join(HERE, "nginx", "api-guard.conf")) as f:
    nginx = f.read()
m = re.search(r"^\s*keepalive_timeout\s+(\d+)s?;", nginx, re.M)
nginx_idle = int(m.group(1)) if m else 60  # nginx's default
for name, keep_alive in [
    ("kubernetes", config["KEEP_ALIVE_SECS"]),
    ("compose", load("compose.yaml")["x-api-guard"]["environment"]["KEEP_ALIVE_SECS"]),
]:
    check(
        seconds(keep_alive) > nginx_idle,
        f"{name}: KEEP_ALIVE_SECS {keep_alive} > nginx upstream keepalive_timeout {nginx_idle}",
    )

with open(os.path.join(HERE, "haproxy", "api-guard.cfg")) as f:
    haproxy = f.read()
haproxy_lines = [line.split("#")[0].strip() for line in haproxy.splitlines()]
check(
    "option httpchk GET /health/ready" in haproxy_lines
    and "http-check expect status 200" in haproxy_lines,
    "haproxy: active checks of /health/ready, 200 expected",
)
default_server = next((line for line in haproxy_lines if line.startswith("default-server ")), "")
inter = re.search(r"\binter (\d+)(ms|s)\b", default_server)
fall = re.search(r"\bfall (\d+)\b", default_server)
# The setting's default, where clap declares it (the crate may move under crates/).
cli = ""
for pattern in ("src/config/cli.rs", "crates/*/src/config/cli.rs"):
    for path in glob.glob(os.path.join(HERE, "..", pattern)):
        with open(path) as f:
            cli += f.read()
m = re.search(r'env = "SHUTDOWN_DRAIN_SECS",[^)]*default_value = "(\d+)"', cli)
default_drain = int(m.group(1)) if m else 0
detection = (
    int(inter.group(1)) / (1000 if inter.group(2) == "ms" else 1) * int(fall.group(1))
    if inter and fall and " check" in f" {default_server}"
    else float("inf")
)
check(
    detection < default_drain,
    f"haproxy: default-server checks every replica and takes a draining one out within "
    f"inter x fall = {detection:g}s < SHUTDOWN_DRAIN_SECS default {default_drain}s",
)
check(
    not any(line.startswith("retry-on") for line in haproxy_lines),
    "haproxy: no retry-on (only connection attempts are retried: a sent POST is never replayed)",
)

replica = load("compose.yaml")["x-api-guard"]
env = replica["environment"]
stop = seconds(replica["stop_grace_period"])
total = seconds(env["SHUTDOWN_TIMEOUT_SECS"])
check(stop > total, f"compose: stop_grace_period {stop}s > SHUTDOWN_TIMEOUT_SECS {total}s")

with open(os.path.join(HERE, "..", "Dockerfile")) as f:
    dockerfile = f.read()
check(
    re.search(r"cargo build .*--no-default-features", dockerfile) is not None,
    "Dockerfile: builds with --no-default-features (no development issuer)",
)
users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(
    bool(users) and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]) is not None,
    f"Dockerfile: runs as a numeric non-root USER (got {users[-1] if users else 'none'})",
)

sys.exit(1 if failures else 0)
