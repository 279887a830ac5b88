#!/usr/bin/env python3
"""What `docker compose up` gives api-guard, run with the real binaries.

No Docker engine runs here, so Compose's part is emulated, following its documented rules:
the service's `env_file`s (optional ones may be missing), then its `environment`, whose
`${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$` are interpolated from the shell, else
from the `.env` of the project directory (the compose file's). The resulting environment is
given to the binary the image would run; only the listen addresses are moved to free loopback
ports (a container has its own 0.0.0.0:8080; this machine may not).

- deploy/compose.yaml with the issuer only in the shell, and no .env: ready, and a token of
  that issuer reaches /api/whoami (the audience default matches);
- the issuer only in the project's .env: ready; in both, with different values: the shell wins;
- nothing set: exit 2, naming what to set;
- deploy/compose.dev.yaml (the try-out): `--dev` ready, its token accepted.

Usage: compose_env_check.py PRODUCTION_BINARY DEVELOPMENT_BINARY (the latter built with the
`dev-issuer` feature, as compose.dev.yaml's image is). Prints one line per case; exit 1 on a
failure.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
LISTENING = re.compile(r"api-guard is listening on http://127\.0\.0\.1:(\d+)")
failures = []


def check(ok, case, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {case}" + (f"\n     {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(case)


def dotenv(path):
    """KEY=VALUE lines as Compose reads them: comments and blank lines skipped, quotes removed."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key.strip().removeprefix("export ").strip()] = value
    return values


def interpolate(text, lookup):
    """Compose's interpolation of one value: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
    `${VAR:?e}` and `${VAR?e}`."""

    def one(m):
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3) or ""
        value = lookup.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if (op == ":?" and not value) or (op == "?" and value is None):
            raise SystemExit(f"compose would stop: {name}: {arg}")
        return value or ""

    return re.sub(r"\$\$|\$\{(\w+)(?:(:?-|:?\?)([^}]*))?\}|\$(\w+)", one, text)


def service_env(compose_file, service, shell):
    project = os.path.dirname(compose_file)
    dot = dotenv(os.path.join(project, ".env")) if os.path.exists(os.path.join(project, ".env")) else {}
    lookup = {**dot, **shell}
    with open(compose_file) as f:
        spec = yaml.safe_load(f)["services"][service]
    env = {}
    for entry in spec.get("env_file", []):
        path, required = (entry, True) if isinstance(entry, str) else (entry["path"], entry.get("required", True))
        path = os.path.join(project, path)
        if os.path.exists(path):
            env.update(dotenv(path))
        elif required:
            raise SystemExit(f"compose would stop: env_file {path} is missing")
    for key, value in (spec.get("environment") or {}).items():
        env[key] = interpolate(str(value), lookup)
    return env, spec.get("command") or []


class Binary:
    """A binary with `env` (and PATH) on a free loopback port, its output read as it comes."""

    def __init__(self, path, env, args=()):
        env = {**env, "BIND_ADDR": "127.0.0.1:0", "PATH": os.environ.get("PATH", "")}
        if "METRICS_ADDR" in env:
            env["METRICS_ADDR"] = "127.0.0.1:0"
        self.cwd = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            [path, *args], env=env, cwd=self.cwd, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.lines = []
        self.port = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            m = LISTENING.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self.ready.set()
        self.ready.set()

    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, limit=20.0):
        """Whether /health/ready answers 200 within `limit` seconds."""
        self.ready.wait(limit)
        deadline = time.monotonic() + limit
        while self.port is not None and self.proc.poll() is None and time.monotonic() < deadline:
            if get(self.base() + "/health/ready")[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def exit_code(self, limit=20.0):
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.cwd, ignore_errors=True)

    def output(self):
        return "\n".join(self.lines[-20:])


def get(url, headers=None, data=None):
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def token(issuer_base):
    basic = base64.b64encode(b"api-guard-dev:api-guard-dev-secret").decode()
    status, body = get(
        f"{issuer_base}/oauth2/default/v1/token",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        data=b"grant_type=client_credentials",
    )
    return json.loads(body)["access_token"] if status == 200 else None


def whoami(service, access_token):
    return get(service.base() + "/api/whoami", headers={"Authorization": f"Bearer {access_token}"})[0]


def main(production, development):
    started = []
    try:
        # An issuer on loopback: the development issuer of the other binary.
        issuer = Binary(development, {}, ["--dev"])
        started.append(issuer)
        if not issuer.wait_ready():
            raise SystemExit(f"the development issuer did not start:\n{issuer.output()}")
        issuer_url = issuer.base() + "/oauth2/default"
        access_token = token(issuer.base())

        project = tempfile.mkdtemp()
        compose = os.path.join(project, "compose.yaml")
        shutil.copy(os.path.join(HERE, "compose.yaml"), compose)

        def replica(shell, dotenv_text=None):
            path = os.path.join(project, ".env")
            if dotenv_text is None:
                if os.path.exists(path):
                    os.remove(path)
            else:
                with open(path, "w") as f:
                    f.write(dotenv_text)
            env, _ = service_env(compose, "api-guard-1", shell)
            service = Binary(production, env)
            started.append(service)
            return service

        service = replica({"AUTH_ISSUER": issuer_url})
        ok = service.wait_ready() and whoami(service, access_token) == 200
        check(ok, "compose.yaml, the issuer from the shell, no .env: ready, whoami 200", service.output())
        service.stop()

        service = replica({}, f"AUTH_ISSUER={issuer_url}\n")
        check(service.wait_ready(), "compose.yaml, the issuer from the project's .env only: ready", service.output())
        service.stop()

        service = replica({"AUTH_ISSUER": issuer_url}, "AUTH_ISSUER=http://127.0.0.1:9/nowhere\n")
        ok = service.wait_ready() and whoami(service, access_token) == 200
        check(ok, "compose.yaml, the shell and .env disagree: the shell wins", service.output())
        service.stop()

        service = replica({})
        code = service.exit_code()
        check(
            code == 2 and any("no issuer configured" in line for line in service.lines),
            f"compose.yaml, no issuer anywhere: exit 2 saying what to set (exit {code})",
            service.output(),
        )
        service.stop()
        shutil.rmtree(project, ignore_errors=True)

        env, command = service_env(os.path.join(HERE, "compose.dev.yaml"), "api-guard", {})
        trial = Binary(development, env, command)
        started.append(trial)
        ok = trial.wait_ready() and whoami(trial, token(trial.base())) == 200
        check(ok, f"compose.dev.yaml ({' '.join(command)}): ready, its own token accepted", trial.output())
    finally:
        for binary in started:
            binary.stop()
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
