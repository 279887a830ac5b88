#!/usr/bin/env python3
"""Mints access tokens from api-guard's development issuer for benches/load/run.

usage: mint.py BASE_URL COUNT OUT_FILE

Client credentials with HTTP Basic, keep-alive connections, a few threads; the tokens
(distinct: each has its own jti) go to OUT_FILE, one per line.
"""
import base64
import http.client
import json
import sys
import threading
import urllib.parse

CLIENT = b"api-guard-dev:api-guard-dev-secret"
BODY = "grant_type=client_credentials&scope=AccessAll"
THREADS = 4


def mint(host, port, count, out, errors):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {
        "Authorization": "Basic " + base64.b64encode(CLIENT).decode(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    for _ in range(count):
        conn.request("POST", "/oauth2/default/v1/token", BODY, headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            errors.append(f"token endpoint answered {response.status}: {body[:200]!r}")
            return
        out.append(json.loads(body)["access_token"])
    conn.close()


def main():
    base, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    url = urllib.parse.urlsplit(base)
    results = [[] for _ in range(THREADS)]
    errors = []
    share = [count // THREADS + (1 if i < count % THREADS else 0) for i in range(THREADS)]
    threads = [
        threading.Thread(target=mint, args=(url.hostname, url.port, n, results[i], errors))
        for i, n in enumerate(share)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("mint.py: " + errors[0])
    tokens = [t for part in results for t in part]
    if len(set(tokens)) != count:
        sys.exit(f"mint.py: wanted {count} distinct tokens, got {len(set(tokens))}")
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
