#!/usr/bin/env python3
"""Reads a JWKS on stdin and prints its first RSA signing key as a PEM public key
(SubjectPublicKeyInfo), for HAProxy's jwt_verify in benches/gateway/run. Standard library only:
the DER is written out by hand."""
import base64
import json
import sys


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + length + body


def integer(raw):
    raw = raw.lstrip(b"\0") or b"\0"
    return der(0x02, (b"\0" + raw) if raw[0] & 0x80 else raw)


keys = [k for k in json.load(sys.stdin)["keys"] if k.get("kty") == "RSA" and k.get("use", "sig") == "sig"]
if not keys:
    sys.exit("jwk_to_pem.py: no RSA signing key in the JWKS")
key = keys[0]
rsa = der(0x30, integer(b64url(key["n"])) + integer(b64url(key["e"])))
algorithm = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010101")) + der(0x05, b""))
spki = der(0x30, algorithm + der(0x03, b"\0" + rsa))
text = base64.b64encode(spki).decode()
print("-----BEGIN PUBLIC KEY-----")
for i in range(0, len(text), 64):
    print(text[i : i + 64])
print("-----END PUBLIC KEY-----")
