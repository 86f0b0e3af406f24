// The OpenID provider Harmony's SSO tests run against: the real, OpenID-certified
// `oidc-provider` package, configured for the device authorization grant (RFC 8628) with
// rotating refresh tokens and one public client. Started by harmony-testkit (`oidc.rs`).
//
// Everything is kept in memory and per process, so each test owns its provider.
//
// Options (argv `--name value`; `--port` and `--issuer` also from PORT / ISSUER):
//   --port N                 listen on 127.0.0.1:N (required)
//   --issuer URL             issuer, default http://127.0.0.1:N
//   --client-id ID           the public client's id, default harmony-cli
//   --id-token-ttl S         id_token lifetime in seconds (default 300)
//   --access-token-ttl S     access token lifetime (default 300)
//   --refresh-token-ttl S    refresh token lifetime (default 3600)
//   --device-code-ttl S      device code lifetime (default 600)
//   --interval S             add `interval` to the device authorization response (default: absent,
//                            as the provider itself never sends it)
//   --slow-down N            answer the first N device polls that would be `authorization_pending`
//                            with `slow_down` instead (default 0)
//   --fail-refresh N         answer the first N refresh-token grants with HTTP 500 `server_error`
//                            before the provider sees them, so the refresh token stays valid (as
//                            Zitadel answers an internal failure; default 0)
//   --drop-refresh N         close the connection of the first N refresh-token grants without an
//                            answer (a transport error for the client; default 0)
//
// Test-only endpoints (not part of any standard):
//   GET /harmony-test/polls  JSON list of the device-code polls seen so far:
//                            [{ "at_ms": <epoch ms>, "outcome": "authorization_pending" | ... }]
//   GET /harmony-test/refreshes  the same for refresh-token grants: outcome `tokens` or the
//                            OAuth error (`invalid_grant` for a revoked or already-used token)
//   GET /harmony-test/ci-jobs?claims=<JSON object>  registers a CI job whose id_tokens carry
//                            those claims (e.g. repository, ref, job_workflow_ref); answers
//                            {"request_token": "..."}
//   GET /harmony-test/github/token?audience=AUD  with `Authorization: Bearer <request_token>`:
//                            a CI id_token as GitHub Actions' token endpoint hands it out,
//                            {"value": "<JWT>"} — signed with this provider's key (so OpenBao
//                            verifies it through this issuer's discovery), `iss` this issuer,
//                            `aud` AUD (GitHub's default when absent: https://github.com/<owner>),
//                            5 minutes of life; 401 for an unknown request token
//
// Users: any login and password are accepted and the login becomes `sub`. A login of the form
// `ROLE+ROLE...@groups` carries a `groups` list of those roles, `ROLE+ROLE...@zitadel` Zitadel's
// project-roles map (`urn:zitadel:iam:org:project:roles: {ROLE: {orgId: domain}}`); any other
// login carries neither.
//
// Prints exactly one line `ready <issuer>` to stdout once listening; logs go to stderr.

import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// stdout carries only the "ready" line: the library's own notices (console.log/info) go to
// stderr, so a parent that stops reading stdout never breaks the provider with EPIPE.
console.log = console.error;
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT },
    issuer: { type: 'string', default: process.env.ISSUER },
    'client-id': { type: 'string', default: 'harmony-cli' },
    'id-token-ttl': { type: 'string', default: '300' },
    'access-token-ttl': { type: 'string', default: '300' },
    'refresh-token-ttl': { type: 'string', default: '3600' },
    'device-code-ttl': { type: 'string', default: '600' },
    interval: { type: 'string' },
    'slow-down': { type: 'string', default: '0' },
    'fail-refresh': { type: 'string', default: '0' },
    'drop-refresh': { type: 'string', default: '0' },
  },
  strict: true,
});

function seconds(name) {
  const value = Number.parseInt(args[name], 10);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name} must be a non-negative integer number of seconds, got ${args[name]}`);
    process.exit(2);
  }
  return value;
}

const port = Number.parseInt(args.port ?? '', 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('--port (or PORT) is required: the TCP port to listen on');
  process.exit(2);
}
const issuer = args.issuer ?? `http://127.0.0.1:${port}`;
const clientId = args['client-id'];
const ttl = {
  id: seconds('id-token-ttl'),
  access: seconds('access-token-ttl'),
  refresh: seconds('refresh-token-ttl'),
  device: seconds('device-code-ttl'),
};
const interval = args.interval === undefined ? undefined : seconds('interval');
let slowDownsLeft = seconds('slow-down');
let refreshFailuresLeft = seconds('fail-refresh');
let refreshDropsLeft = seconds('drop-refresh');

// The raw form body of a request, read here so the grant type is known before the provider
// runs; the provider then takes the parsed body from `ctx.request.body` (its documented fallback
// for an upstream body parser).
async function readForm(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) {
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

// A fresh signing key per process: nothing outlives the test that started it.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'harmony-test' };

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_name: 'Harmony CLI (test)',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: {
    openid: ['sub', 'groups', 'urn:zitadel:iam:org:project:roles'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put the scope-granted claims (email, name) into the id_token itself: OpenBao only sees the
  // id_token, and Zitadel does the same.
  conformIdTokenClaims: false,
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  // devInteractions accept any login; the login becomes `sub`. Role memberships come from the
  // login's form, so tests pick a claim shape by name:
  //   <role>+<role>...@groups   a `groups` list, e.g. harmony-developer@groups
  //   <role>+<role>...@zitadel  Zitadel's project-roles map {role: {orgId: domain}}
  // any other login carries neither claim (as before).
  async findAccount(_ctx, sub) {
    const [who, shape] = sub.split('@');
    const roles = (who ?? '').split('+').filter((r) => r.length > 0);
    const memberships = {};
    if (shape === 'groups') {
      memberships.groups = roles;
    } else if (shape === 'zitadel') {
      memberships['urn:zitadel:iam:org:project:roles'] = Object.fromEntries(
        roles.map((r) => [r, { '100000000000000001': 'harmony.test' }]),
      );
    }
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub.replace('@', '.')}@harmony.test`,
          email_verified: true,
          name: sub,
          preferred_username: sub,
          ...memberships,
        };
      },
    };
  },
  // Public clients get a new refresh token on every use (the library's default for
  // token_endpoint_auth_method=none); stated here because the tests rely on it.
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: () => ttl.access,
    IdToken: () => ttl.id,
    RefreshToken: () => ttl.refresh,
    DeviceCode: () => ttl.device,
    Grant: () => 14 * 24 * 60 * 60,
    Interaction: () => 60 * 60,
    Session: () => 14 * 24 * 60 * 60,
  },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;

const polls = [];
const refreshes = [];
const ciJobs = new Map();

function base64url(value) {
  return Buffer.from(value).toString('base64url');
}

// A CI job's id_token: a JWT signed with the provider's own key, as a CI platform signs its own.
function ciIdToken(claims, audience) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', kid: signingKey.kid };
  const payload = {
    ...claims,
    iss: issuer,
    aud: audience,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: randomBytes(16).toString('hex'),
  };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
  return `${input}.${signature}`;
}

function ciEndpoints(ctx) {
  if (ctx.method !== 'GET') return false;
  if (ctx.path === '/harmony-test/ci-jobs') {
    let claims;
    try {
      claims = JSON.parse(ctx.query.claims ?? '{}');
    } catch {
      claims = undefined;
    }
    if (!claims || typeof claims !== 'object' || Array.isArray(claims)) {
      ctx.status = 400;
      ctx.body = { error: 'claims must be a JSON object' };
      return true;
    }
    const requestToken = randomBytes(24).toString('hex');
    ciJobs.set(requestToken, claims);
    ctx.body = { request_token: requestToken };
    return true;
  }
  if (ctx.path === '/harmony-test/github/token') {
    const auth = ctx.get('authorization');
    const match = /^bearer\s+(.+)$/i.exec(auth);
    const claims = match ? ciJobs.get(match[1]) : undefined;
    if (!claims) {
      ctx.status = 401;
      ctx.body = { message: 'Bad credentials' };
      return true;
    }
    const owner = String(claims.repository_owner ?? claims.repository ?? '').split('/')[0];
    const audience = ctx.query.audience ?? `https://github.com/${owner}`;
    ctx.body = { count: 1, value: ciIdToken(claims, audience) };
    return true;
  }
  return false;
}

provider.use(async (ctx, next) => {
  const testLogs = { '/harmony-test/polls': polls, '/harmony-test/refreshes': refreshes };
  if (ctx.method === 'GET' && Object.hasOwn(testLogs, ctx.path)) {
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(testLogs[ctx.path]);
    return;
  }
  if (ciEndpoints(ctx)) return;
  if (ctx.method === 'POST' && ctx.path === '/token' && refreshFailuresLeft + refreshDropsLeft > 0
      && ctx.is('application/x-www-form-urlencoded')) {
    const form = await readForm(ctx);
    ctx.request.body = form;
    if (form.grant_type === 'refresh_token' && refreshDropsLeft > 0) {
      refreshDropsLeft -= 1;
      refreshes.push({ at_ms: Date.now(), outcome: 'dropped' });
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    if (form.grant_type === 'refresh_token' && refreshFailuresLeft > 0) {
      refreshFailuresLeft -= 1;
      ctx.status = 500;
      ctx.type = 'application/json';
      ctx.body = { error: 'server_error', error_description: 'the test provider failed on purpose' };
      refreshes.push({ at_ms: Date.now(), outcome: 'server_error' });
      return;
    }
  }
  await next();
  if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200
      && interval !== undefined && ctx.body && typeof ctx.body === 'object') {
    ctx.body = { ...ctx.body, interval };
  }
  if (ctx.method === 'POST' && ctx.path === '/token'
      && ctx.oidc?.params?.grant_type === 'urn:ietf:params:oauth:grant-type:device_code') {
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
    if (body.error === 'authorization_pending' && slowDownsLeft > 0) {
      slowDownsLeft -= 1;
      ctx.status = 400;
      ctx.body = {
        error: 'slow_down',
        error_description: 'you are polling too quickly and should back off at a reasonable rate',
      };
    }
    const outcome = ctx.status === 200 ? 'tokens' : (ctx.body?.error ?? `http_${ctx.status}`);
    polls.push({ at_ms: Date.now(), outcome });
  }
  if (ctx.method === 'POST' && ctx.path === '/token'
      && ctx.oidc?.params?.grant_type === 'refresh_token') {
    const outcome = ctx.status === 200 ? 'tokens' : (ctx.body?.error ?? `http_${ctx.status}`);
    refreshes.push({ at_ms: Date.now(), outcome });
  }
});

provider.on('server_error', (_ctx, err) => {
  console.error('oidc-provider server_error:', err);
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
// Node closes idle keep-alive connections after 5 s by default: exactly the gap after a
// slow_down (interval + 5 s), so a client could reuse a connection the server just closed.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('error', (err) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
