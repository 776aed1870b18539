// Walks the console in headless Chromium, each person signed in through the real provider:
// a data-protection officer erases a person; an auditor reads the home page, the log
// (filtered), an entry with its proof, downloads a project bundle, reports on a person still
// named (and downloads that bundle) and on the one erased, and meets an error page; an
// analyst explores events and a profile, sensitive values redacted; an employee asks for
// access, an owner approves it and grants more, a second owner approves that. Every page is
// screenshot (light, dark, and 360 px wide) and checked with axe-core; a
// Content-Security-Policy violation anywhere fails the walk.
// Environment: APP, APP_TIME_MS (as browser.mjs), OUT (a folder for screenshots and
// downloads), NAMED and ERASED (distinct_ids in project shop).
// Prints one JSON line describing what it saw; exits non-zero on any failure.
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const app = process.env.APP;
const appTime = Number(process.env.APP_TIME_MS);
const out = process.env.OUT;

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, timeMs) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(timeMs / 1000 / 30)));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, '0');
}

const seen = { pages: {}, csp_violations: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});

// Screenshots in light, dark and at 360 px, and axe-core's serious or critical findings.
async function check(page, name) {
  await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(out, `${name}-dark.png`), fullPage: true });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: 'light' });
  const size = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: join(out, `${name}-360.png`), fullPage: true });
  await page.setViewportSize(size);
  // Evaluated over the DevTools protocol, so the page's own policy (no inline script) stays.
  await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  seen.pages[name] = { axe: found, dark_background: dark, overflow_at_360: overflow };
}

// Signs `account` in at the provider, enrolls an authenticator, and lands on the home page.
async function signIn(page, account) {
  await page.goto(`${app}/auth/login`);
  await page.click('text=Sign in with Corp SSO');
  await page.waitForSelector('#op-login');
  await page.fill('#login', account);
  await Promise.all([page.waitForURL(/\/auth\/2fa\/enroll$/), page.click('#op-login button')]);
  const secret = (await page.textContent('#secret')).trim();
  await page.fill('input[name=code]', totp(secret, appTime));
  await Promise.all([page.waitForSelector('#recovery-codes'), page.click('#enroll-form button')]);
  await page.click('text=Continue');
  await page.waitForSelector('#can-do');
}

try {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) seen.csp_violations.push(m.text());
  });

  // Dora, data-protection officer on shop, erases one person from the erasures page.
  const dora = await (await browser.newContext()).newPage();
  await signIn(dora, 'dora');
  await dora.click('#nav >> text=Erasures: shop');
  await dora.waitForSelector('#subject-request-form');
  await dora.fill('#subject-request-form textarea[name=distinct_ids]', process.env.ERASED);
  await dora.fill('#subject-request-form input[name=reason]', 'DSR-7');
  await Promise.all([dora.waitForSelector('#subject-requests'), dora.click('#subject-request-form button')]);
  for (let i = 0; i < 100; i++) {
    seen.erasure_state = (await dora.textContent('#subject-requests tbody tr >> nth=0 >> td.state')).trim();
    if (seen.erasure_state === 'SUCCESS') break;
    await new Promise((r) => setTimeout(r, 100));
    await dora.reload();
  }
  await check(dora, 'erasures');

  // Sign in as bob (auditor on every project) at the provider; enroll; land on the home page.
  await signIn(page, 'bob');
  seen.home_path = new URL(page.url()).pathname;
  seen.home_cards = await page.locator('#can-do > li').count();
  await check(page, 'home');

  // The log, filtered to queries of shop.
  await page.click('#nav >> text=Audit log');
  await page.waitForSelector('#entries');
  await check(page, 'audit-log');
  await page.selectOption('select[name=project]', 'shop');
  await page.selectOption('select[name=action]', 'events.query');
  await Promise.all([page.waitForURL(/action=events\.query/), page.click('#filters button')]);
  const actions = await page.locator('#entries tbody tr td:nth-child(4)').allTextContents();
  seen.filtered_rows = actions.length;
  seen.filtered_all_queries = actions.every((a) => a === 'events.query');
  await check(page, 'audit-log-filtered');

  // An entry, with its proof.
  await Promise.all([page.waitForURL(/\/console\/audit\/entries\/\d+$/), page.click('#entries tbody tr >> nth=0 >> a')]);
  await page.waitForSelector('#entry-fields');
  seen.entry_action = (await page.locator('#entry-fields dt:text-is("action") + dd').textContent()).trim();
  seen.proof_hashes = await page.locator('#proof li').count();
  await check(page, 'audit-entry');

  // A project bundle, downloaded as the auditor would.
  await page.goto(`${app}/console/audit`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#bundles >> text=Project shop'),
  ]);
  await download.saveAs(join(out, 'shop.bundle'));
  seen.verify_command = (await page.textContent('#verify-command')).trim();

  // Who accessed a person still named: their entries, and the bundle of them.
  await page.click('#nav >> text=Who accessed a person');
  await page.waitForSelector('#report-form');
  await check(page, 'subject-report-form');
  await page.selectOption('#report-form select[name=project]', 'shop');
  await page.fill('#report-form input[name=distinct_id]', process.env.NAMED);
  await Promise.all([page.waitForSelector('#report'), page.click('#report-form button')]);
  seen.named_standing = await page.getAttribute('#report', 'data-standing');
  seen.named_rows = await page.locator('#report #entries tbody tr').count();
  await check(page, 'subject-report-named');
  const [subjectBundle] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#report-bundle button'),
  ]);
  await subjectBundle.saveAs(join(out, 'subject.bundle'));

  // One who was erased: the report says no report can be made.
  await page.goto(`${app}/console/audit/subject-report`);
  await page.selectOption('#report-form select[name=project]', 'shop');
  await page.fill('#report-form input[name=distinct_id]', process.env.ERASED);
  await Promise.all([page.waitForSelector('#report'), page.click('#report-form button')]);
  seen.erased_standing = await page.getAttribute('#report', 'data-standing');
  seen.erased_message = (await page.textContent('#report-message')).trim();
  await check(page, 'subject-report-erased');

  // A problem met in the browser is a page.
  const missing = await page.goto(`${app}/console/audit/entries/99999999`);
  seen.error_status = missing.status();
  seen.error_text = (await page.textContent('#problem-detail')).trim();
  await check(page, 'error-404');

  // An analyst (alice, analyst on shop) explores events and sees a sensitive value redacted.
  const analyst = await (await browser.newContext()).newPage();
  analyst.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) seen.csp_violations.push(m.text());
  });
  await signIn(analyst, 'alice');
  seen.analyst_has_audit = (await analyst.locator('#nav >> text=Audit log').count()) > 0;
  await analyst.click('#can-do >> text=Events in shop');
  await analyst.waitForSelector('#events');
  seen.explorer_rows = await analyst.locator('#events tbody tr').count();
  seen.explorer_redacted = await analyst.locator('#events .redacted').count();
  seen.explorer_bars = await analyst.locator('#counts-by-day rect').count();
  await check(analyst, 'explorer');
  await analyst.fill('#filters input[name=event]', 'Signup');
  await Promise.all([analyst.waitForURL(/event=Signup/), analyst.click('#filters button')]);
  seen.explorer_filtered_rows = await analyst.locator('#events tbody tr').count();
  await Promise.all([analyst.waitForURL(/\/profiles\//), analyst.click('#events tbody tr >> nth=0 >> a')]);
  seen.profile_redacted = await analyst.locator('#profile .redacted').count();
  await check(analyst, 'profile');

  // Emma asks for access; Olga approves it and grants her admin, which waits for a second
  // owner; Oscar approves; Emma then reads events and administers grants.
  const emma = await (await browser.newContext()).newPage();
  await signIn(emma, 'emma');
  await emma.click('#nav >> text=Request access');
  await emma.waitForSelector('#request-form');
  await emma.fill('#request-form input[name=project]', 'shop');
  await emma.selectOption('#request-form select[name=role]', 'analyst');
  await emma.fill('#request-form input[name=reason]', 'INC-7');
  await Promise.all([emma.waitForSelector('#my-requests'), emma.click('#request-form button')]);
  seen.asked_state = (await emma.textContent('#my-requests tbody tr >> nth=0 >> td.state')).trim();
  await check(emma, 'access-requests');

  const olga = await (await browser.newContext()).newPage();
  await signIn(olga, 'olga');
  await olga.click('#nav >> text=Grants and approvals');
  await olga.waitForSelector('#pending-requests');
  await check(olga, 'grants-queue');
  const emmaId = (await olga.textContent('#pending-requests tbody tr >> nth=0 >> td >> nth=0')).trim();
  await Promise.all([
    olga.waitForURL(/\/console\/admin\/grants$/),
    olga.click('#pending-requests tbody tr >> nth=0 >> button[data-decision=approve]'),
  ]);
  await olga.selectOption('#grant-form select[name=subject_kind]', 'user');
  await olga.fill('#grant-form input[name=subject]', emmaId);
  await olga.selectOption('#grant-form select[name=role]', 'admin');
  await olga.selectOption('#grant-form select[name=project]', 'shop');
  await olga.fill('#grant-form input[name=reason]', 'TICKET-9');
  await Promise.all([olga.waitForSelector('#pending-grants'), olga.click('#grant-form button')]);
  seen.duty_note = (await olga.textContent('#pending-grants .duty')).trim();
  await check(olga, 'grants-pending');
  await emma.reload();
  seen.granted_state = (await emma.textContent('#my-requests tbody tr >> nth=0 >> td.state')).trim();
  seen.emma_grants_before = (await emma.locator('#nav >> text=Grants and approvals').count()) > 0;

  const oscar = await (await browser.newContext()).newPage();
  await signIn(oscar, 'oscar');
  await oscar.goto(`${app}/console/admin/grants`);
  await Promise.all([
    oscar.waitForSelector('#queue-empty'),
    oscar.click('#pending-grants tbody tr >> nth=0 >> button[data-decision=approve]'),
  ]);
  await emma.goto(`${app}/console`);
  seen.emma_sees_events = (await emma.locator('#can-do >> text=Events in shop').count()) > 0;
  seen.emma_grants_after_second_approval =
    !seen.emma_grants_before && (await emma.locator('#nav >> text=Grants and approvals').count()) > 0;
  await emma.click('#can-do >> text=Events in shop');
  await emma.waitForSelector('#events');
  await check(emma, 'explorer-after-approval');

  // Oscar defines a custom role, makes a service token and changes a project's retention.
  await oscar.click('#nav >> text=Roles');
  await oscar.fill('#role-form input[name=name]', 'support-reader');
  await oscar.fill('#role-form input[name=description]', 'Support reads events');
  await oscar.check('#role-form input[name="permission events:read"]');
  await Promise.all([oscar.waitForSelector('#custom-roles'), oscar.click('#role-form button[type=submit]')]);
  seen.custom_role = (await oscar.textContent('#custom-roles tbody tr >> nth=0 >> td >> nth=2')).trim();
  await check(oscar, 'roles');
  await oscar.click('#nav >> text=Service accounts');
  await oscar.waitForSelector('.service-account');
  await Promise.all([
    oscar.waitForSelector('#new-service-token'),
    oscar.click('.service-account >> nth=0 >> button[data-decision=make-token]'),
  ]);
  seen.service_token_length = (await oscar.textContent('#token-secret')).trim().length;
  await check(oscar, 'service-accounts');
  await oscar.click('#nav >> text=Projects');
  await oscar.waitForSelector('#projects');
  await check(oscar, 'projects');
  await oscar.click('#projects >> text=Settings >> nth=0');
  await oscar.fill('#settings-form input[name=retention_days]', '120');
  await Promise.all([oscar.waitForNavigation(), oscar.click('#settings-form button')]);
  await oscar.reload();
  seen.retention_after = await oscar.inputValue('#settings-form input[name=retention_days]');
  await check(oscar, 'project-settings');
  seen.ok = true;
} catch (e) {
  seen.error = String(e);
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(seen)}\n`);
process.exit(seen.ok ? 0 : 1);
