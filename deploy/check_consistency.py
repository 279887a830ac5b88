#!/usr/bin/env python3
"""The rules that tie the deploy/ files together, which no schema can see (README, Deploy):

- the grace period outlasts the whole shutdown: preStop sleep + shutdown timeout (which counts
  from the signal and includes the drain), and the drain is shorter than the timeout;
- the replicas' keep-alive outlasts nginx's idle upstream connections;
- probes: /health/ready for routing, /health/live for restarts;
- HAProxy (deploy/haproxy/) probes /health/ready, notices a draining replica (inter x fall)
  within the default SHUTDOWN_DRAIN_SECS, and never replays a request it sent (no `retry-on`);
- the image leaves the development issuer out and runs as a numeric non-root user;
- Kubernetes: no `replicas:` in a Deployment an HPA scales; the settings come from a
  configMapGenerator (hash-suffixed names, so a change rolls the pods) that the Deployment
  refers to; the NetworkPolicy opens the API port to all and the metrics port to the
  monitoring namespace only;
- the image: dependencies cached across source edits (BuildKit cache mounts for the cargo
  registry and target directory), OCI labels, base images pinned by digest or marked TODO(pin);
- the image's and compose's healthchecks run `api-guard healthcheck` (exec form: no shell in
  the image) with a timeout above the probe's own 2 s;
- the gateway files (deploy/gateway/): every front proxy asks /auth/verify, names the original
  request the way api-guard reads it, passes on all four identity headers (the names
  src/gateway/identity.rs sends) and never lets a client's own through; the gateway compose
  file sets only settings that exist, points UPSTREAM_URL at its `app` service, mounts the
  policy file it names, and outlasts the shutdown like the other.

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


def env_file(*path):
    """KEY=VALUE lines as kustomize's configMapGenerator `envs:` reads them."""
    data = {}
    with open(os.path.join(HERE, *path)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                data[key] = value
    return data


kustomization = load("kubernetes", "kustomization.yaml")
generators = {g["name"]: g for g in kustomization.get("configMapGenerator", [])}
deployment = load("kubernetes", "deployment.yaml")
pod = deployment["spec"]["template"]["spec"]
refs = [e["configMapRef"]["name"] for e in pod["containers"][0].get("envFrom", []) if "configMapRef" in e]
check(
    len(refs) == 1 and refs[0] in generators and len(generators[refs[0]].get("envs", [])) == 1,
    f"kubernetes: the Deployment's settings come from a configMapGenerator (envFrom {refs})",
)
check(
    not kustomization.get("generatorOptions", {}).get("disableNameSuffixHash")
    and not generators.get(refs[0] if refs else "", {}).get("options", {}).get("disableNameSuffixHash"),
    "kubernetes: generated ConfigMap names keep their hash suffix (a change rolls the pods)",
)
config = env_file("kubernetes", generators[refs[0]]["envs"][0]) if refs and refs[0] in generators else {}
hpa = load("kubernetes", "hpa.yaml")
check(
    hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]
    or "replicas" not in deployment["spec"],
    "kubernetes: no `replicas:` in the Deployment its HPA scales (an apply would reset the count)",
)
ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
policy = load("kubernetes", "networkpolicy.yaml")["spec"]
pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
open_to_all = {p["port"] for rule in policy["ingress"] if "from" not in rule for p in rule.get("ports", [])}
monitoring_only = {
    p["port"]
    for rule in policy["ingress"]
    if rule.get("from") and all(
        peer.keys() == {"namespaceSelector"}
        and peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        for peer in rule["from"]
    )
    for p in rule.get("ports", [])
}
check(
    policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    and "Ingress" in policy["policyTypes"]
    and open_to_all == {"http"}
    and "metrics" in monitoring_only
    and all(rule.get("ports") for rule in policy["ingress"]),
    f"kubernetes: NetworkPolicy opens `http` to all ({sorted(open_to_all)}) and `metrics` to the monitoring namespace only",
)
check(
    config.get("METRICS_ADDR", "").rpartition(":")[2] == str(ports.get("metrics"))
    and config.get("BIND_ADDR", "").rpartition(":")[2] == str(ports.get("http")),
    f"kubernetes: BIND_ADDR and METRICS_ADDR use the container ports `http` and `metrics` ({ports})",
)
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
features = re.findall(r'^ARG FEATURES=(\S*)', dockerfile, re.M)
check(
    features in ([], ['""'], [""]),
    f"Dockerfile: ARG FEATURES (the try-out image's dev-issuer) is empty by default (got {features})",
)
users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(
    bool(users) and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]) is not None,
    f"Dockerfile: runs as a numeric non-root USER (got {users[-1] if users else 'none'})",
)

runs = re.findall(r"^RUN ((?:.*\\\n)*.*)$", dockerfile, re.M)
build_run = next((r for r in runs if "cargo build" in r), "")
mounts = re.findall(r"--mount=type=cache,target=(\S+?)(?:,|\s)", build_run)
check(
    "/usr/local/cargo/registry" in mounts and any(m.endswith("/target") for m in mounts),
    f"Dockerfile: the cargo build caches the registry and target directory across builds ({mounts})",
)
labels = set(re.findall(r"org\.opencontainers\.image\.([a-z.]+)=", dockerfile))
check(
    {"title", "version", "revision", "licenses", "description"} <= labels,
    f"Dockerfile: OCI labels org.opencontainers.image.* ({sorted(labels)})",
)
froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
unpinned = [image for image in froms if "@sha256:" not in image]
check(
    not unpinned or "TODO(pin)" in dockerfile,
    f"Dockerfile: base images pinned by digest, or a TODO(pin) note says how (unpinned: {unpinned})",
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

# The gateway files (deploy/gateway/).
with open(os.path.join(HERE, "..", "src", "gateway", "identity.rs")) as f:
    identity = sorted(set(re.findall(r'from_static\("(x-auth-[a-z-]+)"\)', f.read())))
check(len(identity) == 4, f"gateway: four identity headers in src/gateway/identity.rs ({identity})")


def gateway_file(name):
    with open(os.path.join(HERE, "gateway", name)) as f:
        return f.read()


def lines_without_comments(text):
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


nginx_gw = lines_without_comments(gateway_file("nginx-auth-request.conf"))
nginx_lower = [line.lower() for line in nginx_gw]
check(
    any(re.fullmatch(r"proxy_pass http://\S+/auth/verify;", line) for line in nginx_gw)
    and "proxy_set_header x-original-method $request_method;" in nginx_lower
    and "proxy_set_header x-original-uri $request_uri;" in nginx_lower
    and "proxy_pass_request_body off;" in nginx_lower
    and all(
        any(re.fullmatch(rf"auth_request_set \$(\w+) +\$upstream_http_{h.replace('-', '_')};", l) for l in nginx_lower)
        and any(re.fullmatch(rf"proxy_set_header {h} +\$\w+;", l) for l in nginx_lower)
        for h in identity
    ),
    "gateway: nginx asks /auth/verify with X-Original-Method/URI, no body, and sets all four X-Auth-* from its answer",
)
caddy = lines_without_comments(gateway_file("Caddyfile"))
caddy_lower = [line.lower() for line in caddy]
forward = next((i for i, line in enumerate(caddy_lower) if line.startswith("forward_auth ")), len(caddy))
copy = next((line.split()[1:] for line in caddy_lower if line.startswith("copy_headers ")), [])
check(
    "uri /auth/verify" in caddy_lower
    and sorted(copy) == identity
    and all(f"request_header -{h}" in caddy_lower[:forward] for h in identity),
    "gateway: Caddy's forward_auth asks /auth/verify, copies all four X-Auth-*, and removes the client's first",
)
traefik = yaml.safe_load(gateway_file("traefik.yaml"))
forward_auth = traefik["http"]["middlewares"]["api-guard"]["forwardAuth"]
stripped = {k.lower() for k in traefik["http"]["middlewares"]["strip-identity"]["headers"]["customRequestHeaders"]}
check(
    forward_auth["address"].endswith("/auth/verify")
    and sorted(h.lower() for h in forward_auth["authResponseHeaders"]) == identity
    and stripped == set(identity)
    and "UNTESTED" in gateway_file("traefik.yaml"),
    "gateway: Traefik's forwardAuth asks /auth/verify, copies and first strips all four X-Auth-*, and says it is untested",
)
gateway = load("gateway", "compose.yaml")
guard = gateway["services"]["api-guard"]
genv = guard["environment"]
known = set(re.findall(r'env = "([A-Z0-9_]+)"', cli))
unknown = sorted(set(genv) - known - {"AUTH_POLICY_FILE"})
check(not unknown, f"gateway compose: every setting exists in src/config/cli.rs (unknown: {unknown})")
app_port = str(gateway["services"]["app"]["expose"][0])
check(
    genv.get("UPSTREAM_URL") == f"http://app:{app_port}",
    f"gateway compose: UPSTREAM_URL {genv.get('UPSTREAM_URL')} is the app service's exposed port {app_port}",
)
mounts = {v.split(":")[1]: v.split(":")[0] for v in guard.get("volumes", [])}
policy_mount = mounts.get(genv.get("AUTH_POLICY_FILE", ""), "")
check(
    os.path.isfile(os.path.join(HERE, "gateway", policy_mount)),
    f"gateway compose: AUTH_POLICY_FILE {genv.get('AUTH_POLICY_FILE')} is mounted from a file that exists ({policy_mount})",
)
gstop, gtotal = seconds(guard["stop_grace_period"]), seconds(genv["SHUTDOWN_TIMEOUT_SECS"])
check(gstop > gtotal, f"gateway compose: stop_grace_period {gstop}s > SHUTDOWN_TIMEOUT_SECS {gtotal}s")
check(
    guard.get("healthcheck", {}).get("test") == compose_hc.get("test"),
    "gateway compose: the same healthcheck as deploy/compose.yaml",
)

sys.exit(1 if failures else 0)
