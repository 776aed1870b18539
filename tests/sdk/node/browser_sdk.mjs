// Drives mixpanel-browser, the official browser SDK, unchanged but for `api_host`, on a page
// served from another origin than auditgate's, in headless Chromium (playwright-core).
// Environment: APP (auditgate's base URL), TOKEN (the project token), PAGE_PORT (the port
// the page is served on: its origin must be in the project's allowed_origins).
// Prints one JSON line of what it saw; exits non-zero if any request failed or was refused.
import { readFile } from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";

import { chromium } from "playwright-core";

const app = process.env.APP;
const token = process.env.TOKEN;
const port = Number(process.env.PAGE_PORT);
const require = createRequire(import.meta.url);
const sdk = await readFile(require.resolve("mixpanel-browser/dist/mixpanel.umd.js"));

// The customer's web app: a page and the SDK, nothing else.
const server = http.createServer((req, res) => {
  if (req.url === "/mixpanel.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(sdk);
  } else {
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><title>shop</title><body><script src="/mixpanel.js"></script></body>');
  }
});
await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));

const seen = { responses: [], failed: [], console_errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
});
let ok = false;
try {
  const page = await browser.newPage();
  page.on("response", (r) => {
    if (r.url().startsWith(app)) {
      const u = new URL(r.url());
      seen.responses.push({ method: r.request().method(), path: u.pathname, status: r.status(), img: u.searchParams.get("img") === "1" });
    }
  });
  page.on("requestfailed", (r) => seen.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("console", (m) => {
    if (m.type() === "error") seen.console_errors.push(m.text());
  });
  await page.goto(`http://127.0.0.1:${port}/`);

  // Each instance is one configuration; its calls are awaited until the SDK reports them sent.
  seen.results = await page.evaluate(
    async ({ app, token }) => {
      const results = {};
      const init = (name, config) =>
        new Promise((resolve) =>
          window.mixpanel.init(
            token,
            { api_host: app, debug: true, persistence: "localStorage", persistence_name: name, ...config, loaded: resolve },
            name,
          ),
        );
      // The SDK's callback gets 1 / {status: 1} on success, 0 / {status: 0, error} on failure.
      const sent = (label, fn) =>
        new Promise((resolve) => fn((r) => resolve((results[label] = r))));

      // Sending at once (no batching): every call is its own request.
      const direct = await init("direct", { batch_requests: false });
      await sent("track anonymous", (cb) => direct.track("Viewed Pricing", { plan: "pro" }, cb));
      results.alice_anonymous_id = direct.get_distinct_id();
      direct.identify("alice@example.com");
      await sent("track identified", (cb) => direct.track("Signed In", {}, cb));
      await sent("people.set", (cb) => direct.people.set({ $email: "alice@example.com", plan: "pro" }, cb));
      await sent("people.increment", (cb) => direct.people.increment("logins", 2, cb));
      await sent("set_group", (cb) => direct.set_group("company", "acme", cb));
      await sent("get_group().set", (cb) => direct.get_group("company", "acme").set({ tier: "gold" }, cb));
      await sent("track in group", (cb) => direct.track("Invited Teammate", {}, cb));

      // alias (original ID merge): an anonymous visitor becomes bob.
      const aliased = await init("aliased", { batch_requests: false });
      results.bob_anonymous_id = aliased.get_distinct_id();
      await sent("track before alias", (cb) => aliased.track("Viewed Home", {}, cb));
      aliased.alias("bob@example.com");
      await sent("track after alias", (cb) => aliased.track("Bought", {}, cb));

      // The image pixel: GET with img=1, nothing read back.
      const pixel = await init("pixel", { batch_requests: false, img: true, api_method: "GET" });
      pixel.identify("carol@example.com");
      pixel.track("Pixel Seen");

      // Batch mode (the SDK's default): queued, then sent in batches.
      const batched = await init("batched", { batch_requests: true, batch_flush_interval_ms: 100 });
      batched.identify("dave@example.com");
      for (let i = 0; i < 5; i++) batched.track("Batched", { i });
      batched.people.set({ plan: "team" });
      batched.get_group("company", "acme").set_once({ founded: 1999 });
      return results;
    },
    { app, token },
  );
  // Batches go out on a timer and the pixel as an image: wait until the answers stop coming.
  let last = -1;
  for (let i = 0; i < 40 && seen.responses.length !== last; i++) {
    last = seen.responses.length;
    await page.waitForTimeout(750);
  }
  ok = true;
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(seen));
const refused = seen.responses.filter((r) => r.status !== 200 && r.status !== 204);
if (!ok || seen.failed.length || refused.length) process.exit(1);
