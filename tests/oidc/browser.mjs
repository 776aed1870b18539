// Walks auditgate's sign-in pages in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): sign in at the real provider, read the QR code page, enroll, read data,
// sign out; then sign in again, have a replayed code refused, and pass with a recovery code.
// Environment: APP (auditgate's base URL), APP_TIME_MS (the app's clock, for TOTP codes).
// Prints one JSON line describing what it saw; exits non-zero on any failure.
import * as crypto from 'node:crypto';

import { chromium } from 'playwright-core';

const app = process.env.APP;
const appTime = Number(process.env.APP_TIME_MS);

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

// RFC 6238 with SHA-1, 6 digits and 30-second steps, as authenticator apps compute it.
function totp(secret, timeMs) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(timeMs / 1000 / 30)));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, '0');
}

const seen = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage();

  // The sign-in page lists the provider.
  await page.goto(`${app}/auth/login`);
  await page.click('text=Sign in with Corp SSO');
  // The provider's own sign-in form.
  await page.waitForSelector('#op-login');
  await page.fill('#login', 'alice');
  await Promise.all([page.waitForURL(/\/auth\/2fa\/enroll$/), page.click('#op-login button')]);

  // The QR code page: an SVG code, the secret as text, and the otpauth URI.
  const qr = await page.locator('#qr svg').boundingBox();
  seen.qr_size = qr ? Math.round(qr.width) : 0;
  const secret = (await page.textContent('#secret')).trim();
  seen.otpauth_uri = (await page.textContent('#otpauth-uri')).trim();
  const used = totp(secret, appTime);
  await page.fill('input[name=code]', used);
  const [enrolled] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/auth/2fa/enroll') && r.request().method() === 'POST'),
    page.click('#enroll-form button'),
  ]);
  if (enrolled.status() !== 200) throw new Error(`enroll: ${enrolled.status()} ${await enrolled.text()}`);
  await page.waitForSelector('#recovery-codes');
  const recovery = await page.locator('#recovery-codes code').allTextContents();
  seen.recovery_codes = recovery.length;

  await page.click('text=Continue');
  await page.waitForSelector('#who');
  seen.who = (await page.textContent('#who')).trim();

  // Data, read with the session cookie.
  const events = await page.goto(`${app}/api/v1/projects/shop/events`);
  seen.events_status = events.status();
  seen.events_body_has_events = (await events.json()).events !== undefined;

  // Sign out: here, then at the provider's end_session endpoint.
  await page.goto(`${app}/account`);
  await page.click('#logout-form button');
  await page.waitForURL((url) => !url.href.startsWith(app));
  seen.after_logout = new URL(page.url()).pathname;

  // Again: a replayed code is refused; a recovery code passes.
  await page.goto(`${app}/auth/login`);
  await page.click('text=Sign in with Corp SSO');
  const loginForm = await page.waitForSelector('#op-login, #verify-form');
  if ((await loginForm.getAttribute('id')) === 'op-login') {
    await page.fill('#login', 'alice');
    await page.click('#op-login button');
  }
  await page.waitForSelector('#verify-form');
  await page.fill('#verify-form input[name=code]', used);
  const [replay] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/auth/2fa/verify') && r.request().method() === 'POST'),
    page.click('#verify-form button'),
  ]);
  seen.replay_status = replay.status();
  await page.goto(`${app}/auth/2fa/verify`);
  await page.click('text=Use a recovery code');
  await page.fill('#recovery-form input[name=recovery_code]', recovery[0]);
  await Promise.all([page.waitForSelector('#who'), page.click('#recovery-form button')]);
  seen.notices = await page.locator('#notices li').count();
  seen.ok = true;
} catch (e) {
  seen.error = String(e);
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(seen)}\n`);
process.exit(seen.ok ? 0 : 1);
