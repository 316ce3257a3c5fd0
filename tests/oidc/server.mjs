// A real, independent OpenID Connect provider for faoyam's external sign-in tests.
//
// It is the certified `oidc-provider` package, configured with:
// - open dynamic client registration (POST /reg), so each test registers faoyam as a
//   client with the redirect_uri of its own server (RFC 7591);
// - the development login/consent pages ("devInteractions"): any login name signs in,
//   and the login name becomes the account's `sub`;
// - one fixed account profile (nickname, name, email, picture) from $ACCOUNT_JSON;
// - PKCE required for every client.
//
// Test-only routes, under /__test/ and nowhere else:
// - GET  /__test/avatar.png  the account's profile picture (the file $AVATAR_FILE);
// - POST /__test/tamper      {"claims": {...}, "drop": [...], "foreign_key": bool}: the
//   NEXT token response gets an ID token with these claims changed or removed, re-signed with the provider's
//   own key (or with a key the provider does not publish). This plays a misbehaving or
//   compromised token endpoint, which a relying party must refuse. {} clears it.
//
// It listens on 127.0.0.1 on $PORT (0: any free port) and prints one JSON line
// {"issuer": "..."} on stdout when ready. It stops when its standard input closes.

import http from 'node:http';
import { readFileSync } from 'node:fs';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const account = JSON.parse(process.env.ACCOUNT_JSON || '{}');
const avatarFile = process.env.AVATAR_FILE || '';

const signing = await jose.generateKeyPair('RS256', { extractable: true });
const foreign = await jose.generateKeyPair('RS256', { extractable: true });
const KID = 'test-signing-key';
const privateJwk = { ...(await jose.exportJWK(signing.privateKey)), kid: KID, alg: 'RS256', use: 'sig' };

let tamper = null;

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function tamperIdToken(idToken, how) {
  const [h, p] = idToken.split('.');
  const header = b64json(h);
  const payload = { ...b64json(p), ...(how.claims || {}) };
  for (const name of how.drop || []) delete payload[name];
  const key = how.foreign_key ? foreign.privateKey : signing.privateKey;
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

async function testRoutes(ctx, next) {
  if (ctx.path === '/__test/avatar.png' && ctx.method === 'GET') {
    ctx.type = 'image/png';
    ctx.body = readFileSync(avatarFile);
    return;
  }
  if (ctx.path === '/__test/tamper' && ctx.method === 'POST') {
    const how = await readJson(ctx.req);
    tamper = how && (how.claims || how.drop || how.foreign_key) ? how : null; // {} clears it
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === '/token' && tamper && ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
    const how = tamper;
    tamper = null;
    ctx.body = { ...ctx.body, id_token: await tamperIdToken(ctx.body.id_token, how) };
  }
}

function configuration(issuer) {
  return {
    jwks: { keys: [privateJwk] },
    findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            nickname: account.nickname,
            name: account.name,
            email: account.email,
            email_verified: true,
            picture: `${issuer}/__test/avatar.png`,
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'nickname', 'picture'],
      email: ['email', 'email_verified'],
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
    },
    pkce: { required: () => true },
    cookies: { keys: ['faoyam-test-provider-cookie-key'] },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600 },
  };
}

let handler = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = http.createServer((req, res) => handler(req, res));

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration(issuer));
  provider.use(testRoutes);
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
