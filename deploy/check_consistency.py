#!/usr/bin/env python3
"""The rules that tie the deploy/ files together, which no schema can see (README, Deploy):

- the grace period outlasts the whole shutdown: preStop sleep + shutdown timeout (which counts
  from the signal and includes the drain), and the drain is shorter than the timeout;
- the replicas' keep-alive outlasts nginx's idle upstream connections;
- probes: /health/ready for routing, /health/live for restarts;
- the image leaves the development issuer out and runs as a numeric non-root user;
- the image's and compose's healthchecks run `api-guard healthcheck` (exec form: no shell in
  the image) with a timeout above the probe's own 2 s.

Run by .ci/deploy-validate with PyYAML; prints one line per rule and exits 1 if one fails.
"""

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

# `api-guard healthcheck` gives up after 2 s; the runner's timeout must leave it that long.
PROBE_SECS = 2
entrypoint = re.findall(r'^ENTRYPOINT\s+\["([^"]+)"', dockerfile, re.M)
m = re.search(r"^HEALTHCHECK\s+((?:.*\\\n)*.*)$", dockerfile, re.M)
healthcheck = m.group(1).replace("\\\n", " ") if m else ""
hc_timeout = re.search(r"--timeout=(\d+)s", healthcheck)
check(
    bool(entrypoint)
    and re.search(r'CMD \["' + re.escape(entrypoint[-1]) + r'", "healthcheck"\]', healthcheck) is not None
    and hc_timeout is not None
    and int(hc_timeout.group(1)) > PROBE_SECS,
    f"Dockerfile: HEALTHCHECK runs [ENTRYPOINT, healthcheck] in exec form with --timeout > {PROBE_SECS}s",
)
compose_hc = replica.get("healthcheck", {})
check(
    bool(entrypoint)
    and compose_hc.get("test") == ["CMD", entrypoint[-1], "healthcheck"]
    and seconds(compose_hc.get("timeout", "30s")) > PROBE_SECS,
    f"compose: healthcheck test is [CMD, {entrypoint[-1] if entrypoint else '?'}, healthcheck] with timeout > {PROBE_SECS}s",
)

sys.exit(1 if failures else 0)
