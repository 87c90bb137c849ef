// A loopback OpenID provider configured like INDIGO IAM, for prodpanel tests and demos.
// DEMO/TEST ONLY: the login page accepts ANY password; the login name is the user name.
//
// Environment (all optional except OP_PORT):
//   OP_PORT            port on 127.0.0.1
//   OP_ISSUER          issuer, default http://127.0.0.1:<port>/ (trailing slash, like IAM)
//   OP_CONFIG          path of a JSON file, or OP_CONFIG_JSON: the JSON itself (default: demo-config.json):
//     { "users":   { "alice": { "name": "Alice", "email": "...", "groups": ["spd", "spd/production"] } },
//       "clients": [ { "client_id": "panel", "client_secret": "...", "redirect_uris": [...], ... } ],
//       "ttl":     { "IdToken": 600, "AccessToken": 3600, "RefreshToken": 2592000, "DeviceCode": 600 },
//       "rotate_refresh_tokens": true }
//   OP_ID_TOKEN_TTL    overrides ttl.IdToken (seconds)
//   OP_TEST_HOOKS=1    enables /_test/* endpoints (statistics, tampering with the next ID token)
//
// The signing key is new at every start (its key id stays "op-test-key"), as after a restart of a
// provider that keeps no keys: relying parties must read the key set again.
//
// Like IAM: `groups` (plain names) in the ID token under the `profile` scope, `wlcg.groups`
// (paths with a leading '/') under the `wlcg.groups` scope, refresh tokens only with
// offline_access, the device flow, and an RFC 8693 token-exchange grant (impersonation only).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const port = Number.parseInt(process.env.OP_PORT || '0', 10);
if (!port) {
  console.error('OP_PORT is required');
  process.exit(2);
}
const issuer = process.env.OP_ISSUER || `http://127.0.0.1:${port}/`;

function loadConfig() {
  if (process.env.OP_CONFIG) return JSON.parse(fs.readFileSync(process.env.OP_CONFIG, 'utf8'));
  if (process.env.OP_CONFIG_JSON) return JSON.parse(process.env.OP_CONFIG_JSON);
  // Demo (`make oidc-op`): users alice/carol/bob, client prodpanel-demo (see demo-config.json).
  return JSON.parse(fs.readFileSync(new URL('./demo-config.json', import.meta.url), 'utf8'));
}
const cfg = loadConfig();
const users = cfg.users || {};
const ttl = {
  IdToken: 600, // IAM's default for new clients
  AccessToken: 3600,
  RefreshToken: 30 * 24 * 3600,
  DeviceCode: 600,
  Grant: 30 * 24 * 3600,
  Session: 24 * 3600,
  Interaction: 3600,
  AuthorizationCode: 60,
  ...(cfg.ttl || {}),
};
if (process.env.OP_ID_TOKEN_TTL) ttl.IdToken = Number.parseInt(process.env.OP_ID_TOKEN_TTL, 10);

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

const clients = (cfg.clients || []).map((c) => ({
  grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE, TOKEN_EXCHANGE],
  response_types: ['code'],
  redirect_uris: [],
  ...c,
}));

// Our own RSA signing key, so that the test hooks can re-sign tampered ID tokens.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'op-test-key', alg: 'RS256', use: 'sig' };

function accountClaims(login) {
  const u = users[login] || {};
  const groups = u.groups || [];
  return {
    sub: u.sub || login,
    name: u.name || login,
    preferred_username: login,
    email: u.email || `${login}@example.org`,
    email_verified: true,
    groups,
    'wlcg.groups': groups.map((g) => (g.startsWith('/') ? g : `/${g}`)),
  };
}

const subToLogin = new Map(Object.entries(users).map(([login, u]) => [u.sub || login, login]));

const stats = { grants: {}, refresh: 0, token_exchange: 0, grant_errors: 0, jwks: 0 };
let tamperNextIdToken = null;

const configuration = {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  ttl,
  scopes: ['openid', 'offline_access', 'profile', 'email', 'wlcg', 'wlcg.groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups'],
    email: ['email', 'email_verified'],
    'wlcg.groups': ['wlcg.groups'],
  },
  // IAM puts the profile claims (groups included) into the ID token itself.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  rotateRefreshToken: () => cfg.rotate_refresh_tokens !== false,
  async findAccount(ctx, sub) {
    const login = subToLogin.get(sub) || sub;
    return {
      accountId: sub,
      async claims() {
        return { ...accountClaims(login), sub };
      },
    };
  },
  // Consent once for everything the client asked for (IAM shows one approval page).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    return undefined;
  },
};

// The devInteractions login form submits the login name as the account id.
const provider = new Provider(issuer, configuration);
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const gty = ctx.oidc.params.grant_type;
  stats.grants[gty] = (stats.grants[gty] || 0) + 1;
  if (gty === 'refresh_token') stats.refresh += 1;
});
provider.on('grant.error', (ctx, err) => {
  stats.grant_errors += 1;
  console.error(`grant error ${ctx.oidc.params?.grant_type}: ${err.message}`);
});

// ---- RFC 8693 token exchange (impersonation only, like IAM) --------------------------------
// The subject token is one of our access tokens; the result is a signed JWT for the requested
// audience carrying the user's groups, i.e. what a PanDA server can verify through our JWKS.
const parameters = ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type', 'actor_token'];
provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const p = ctx.oidc.params;
    if (p.actor_token) throw new errors.InvalidRequest('actor_token is not supported (impersonation only)');
    if (p.subject_token_type !== 'urn:ietf:params:oauth:token-type:access_token') {
      throw new errors.InvalidRequest('subject_token_type must be an access token');
    }
    const subject = await provider.AccessToken.find(p.subject_token || '');
    if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject token is invalid or expired');
    const audience = p.audience || ctx.oidc.client.clientId;
    const audClient = await provider.Client.find(audience);
    const claimsClient = audClient || ctx.oidc.client;
    const account = await configuration.findAccount(ctx, subject.accountId);
    const claims = await account.claims();
    const token = new provider.IdToken({ ...claims }, { ctx, client: claimsClient });
    token.scope = p.scope || subject.scope;
    let jwt = await token.issue({ use: 'idtoken' });
    if (!audClient) jwt = resign(jwt, { aud: audience });
    stats.token_exchange += 1;
    ctx.body = {
      access_token: jwt,
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'Bearer',
      expires_in: ttl.IdToken,
    };
  },
  parameters,
);

// ---- test hooks ---------------------------------------------------------------------------
function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function resign(jwt, overrides) {
  const [h, p] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = { ...JSON.parse(Buffer.from(p, 'base64url')), ...overrides };
  for (const [k, v] of Object.entries(overrides)) if (v === null) delete payload[k];
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = crypto.sign('RSA-SHA256', Buffer.from(input), privateKey);
  return `${input}.${b64url(sig)}`;
}

const originalIssue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issue(opts) {
  const jwt = await originalIssue.call(this, opts);
  if (opts?.use === 'idtoken' && tamperNextIdToken) {
    const overrides = tamperNextIdToken;
    tamperNextIdToken = null;
    return resign(jwt, overrides);
  }
  return jwt;
};

// The built-in pages import Google Fonts; strip that so browsers stay on loopback (offline tests).
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === 'string' && ctx.body.includes('fonts.googleapis.com')) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);/g, '');
  }
});

if (process.env.OP_TEST_HOOKS === '1') {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/_test/stats' && ctx.method === 'GET') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/jwks') stats.jwks += 1; // key-set reads (relying parties' key rotation)
    if (ctx.path === '/_test/tamper-next-id-token' && ctx.method === 'POST') {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      tamperNextIdToken = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      ctx.body = { ok: true };
      return;
    }
    await next();
  });
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-op listening on ${issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
