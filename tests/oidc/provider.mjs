// A real OpenID Provider (the certified `oidc-provider` package) on loopback, for auditgate's
// end-to-end sign-in tests. Configured by environment:
//   OP_ALG        RS256 or ES256: the ID token signing algorithm (and key type)
//   OP_GROUPS     id_token: groups (and email) in the ID token; userinfo: only from userinfo
//   OP_REDIRECT   auditgate's /auth/callback URL
//   OP_BACKCHANNEL auditgate's /auth/backchannel-logout/<provider> URL
// Prints one JSON line {"issuer": ...} once listening.
import * as crypto from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const alg = process.env.OP_ALG || 'RS256';
const groupsIn = process.env.OP_GROUPS || 'id_token';

const accounts = {
  alice: { name: 'Alice Analyst', groups: ['analysts'] },
  bob: { name: 'Bob Auditor', groups: ['auditors'] },
  dora: { name: 'Dora Data-Protection', groups: ['dpos'] },
  olga: { name: 'Olga Owner', groups: ['owners'] },
  oscar: { name: 'Oscar Owner', groups: ['owners'] },
  emma: { name: 'Emma Employee', groups: [] },
};

function signingKey() {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-1`, alg, use: 'sig' };
}

const server = createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'auditgate',
    client_secret: 'auditgate-e2e-secret',
    redirect_uris: [process.env.OP_REDIRECT],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: alg,
    backchannel_logout_uri: process.env.OP_BACKCHANNEL,
    backchannel_logout_session_required: true,
  }],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
    acr: null,
    amr: null,
    auth_time: null,
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // With true (the default), scope claims go to userinfo only; false puts them in the ID token.
  conformIdTokenClaims: groupsIn !== 'id_token',
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
  },
  acrValues: ['urn:test:loa:1'],
  pkce: { required: () => true },
  // The provider refuses to call loopback addresses (SSRF protection); here auditgate is on
  // loopback by design, so its back-channel logout calls go out without that check.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@example.com`, email_verified: true, name: account.name, groups: account.groups,
        };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// The sign-in page: a plain form naming the account; consent is granted without a page.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.prompt.name === 'login' && !m[2]) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>Test provider sign-in</title></head><body>
      <form method="post" action="/interaction/${escape(details.uid)}/login" id="op-login">
        <label>Account <input name="login" id="login" autofocus></label>
        <button type="submit">Sign in</button>
      </form></body></html>`;
    return undefined;
  }
  if (details.prompt.name === 'login') {
    const body = await new Promise((resolve) => {
      let data = '';
      ctx.req.on('data', (c) => { data += c; });
      ctx.req.on('end', () => resolve(new URLSearchParams(data)));
    });
    const accountId = body.get('login');
    if (!accounts[accountId]) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId, amr: ['pwd'], acr: 'urn:test:loa:1' },
    }, { mergeWithLastSubmission: false });
  }
  const { params, session } = details;
  const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  const grantId = await grant.save();
  return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
});

provider.on('backchannel.error', (ctx, err) => process.stderr.write(`backchannel.error: ${err} ${err.cause}\n`));
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
// Stdout carries only that line: the test stops reading it, so anything else goes to stderr.
for (const level of ['log', 'info', 'warn']) {
  console[level] = (...args) => process.stderr.write(`${args.join(' ')}\n`);
}
process.stdout.on('error', () => {});
