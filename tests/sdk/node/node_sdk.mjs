// Drives auditgate with Mixpanel's official Node SDK (npm `mixpanel`), unchanged but for its
// host, port and protocol. Usage:
//   node node_sdk.mjs BASE_URL PROJECT_TOKEN SERVICE_ACCOUNT SECRET PROJECT_ID
// BASE_URL is https:// (the SDK sends secrets over HTTPS only); NODE_EXTRA_CA_CERTS names the
// test's certificate. Exits non-zero, naming the call, if the SDK reports any error.
import Mixpanel from "mixpanel";

const [base, token, account, secret, project] = process.argv.slice(2);
const url = new URL(base);
const where = {
  host: url.hostname,
  port: url.port,
  protocol: url.protocol.replace(":", ""),
  keepAlive: false,
};

// Each SDK call takes a Node-style callback; a failure names the call and stops the script.
const call = (name, fn) =>
  new Promise((resolve, reject) =>
    fn((err) => {
      const errors = Array.isArray(err) ? err.filter(Boolean) : err ? [err] : [];
      if (errors.length) reject(new Error(`${name}: ${errors.map(String).join("; ")}`));
      else resolve();
    }),
  );

const quiet = Mixpanel.init(token, where);
const verbose = Mixpanel.init(token, { ...where, verbose: true });
const now = Date.now();

await call("track", (cb) => quiet.track("Signed Up", { distinct_id: "node-user", plan: "pro" }, cb));
await call("track (verbose)", (cb) => verbose.track("Opened", { distinct_id: "node-user" }, cb));
await call("track_batch", (cb) =>
  quiet.track_batch(
    [1, 2, 3].map((n) => ({ event: "Batched", properties: { distinct_id: "node-user", n, time: now - n * 1000 } })),
    cb,
  ),
);
await call("track_batch (verbose)", (cb) =>
  verbose.track_batch([{ event: "Batched verbose", properties: { distinct_id: "node-user", time: now } }], cb),
);
await call("track (before alias)", (cb) => quiet.track("Browsed", { distinct_id: "node-device" }, cb));
await call("alias", (cb) => quiet.alias("node-device", "node-user", cb));

const people = quiet.people;
await call("people.set", (cb) => people.set("node-user", { $email: "node@example.com", plan: "pro" }, cb));
await call("people.set_once", (cb) => people.set_once("node-user", { plan: "free", first_seen: "2026-01-01" }, cb));
await call("people.increment", (cb) => people.increment("node-user", "logins", 2, cb));
await call("people.append", (cb) => people.append("node-user", "pages", "home", cb));
await call("people.union", (cb) => people.union("node-user", { tags: ["a", "b"] }, cb));
await call("people.remove", (cb) => people.remove("node-user", { tags: "a" }, cb));
await call("people.track_charge", (cb) => people.track_charge("node-user", 9.5, { sku: "t1" }, cb));
await call("people.set (doomed)", (cb) => people.set("node-gone", { plan: "free" }, cb));
await call("people.unset", (cb) => people.unset("node-user", "first_seen", cb));
await call("people.delete_user", (cb) => people.delete_user("node-gone", cb));
await call("people.set (verbose)", (cb) => verbose.people.set("node-user", "verbose", true, cb));

const groups = quiet.groups;
await call("groups.set", (cb) => groups.set("company", "acme", { $name: "Acme", tier: "gold" }, cb));
await call("groups.set_once", (cb) => groups.set_once("company", "acme", { tier: "silver", founded: 1999 }, cb));
await call("groups.union", (cb) => groups.union("company", "acme", { regions: ["eu", "us"] }, cb));
await call("groups.remove", (cb) => groups.remove("company", "acme", { regions: "us" }, cb));
await call("groups.unset", (cb) => groups.unset("company", "acme", "founded", cb));
await call("groups.set (doomed)", (cb) => groups.set("company", "gone", { tier: "free" }, cb));
await call("groups.delete_group", (cb) => groups.delete_group("company", "gone", cb));

// /import authenticates: a service account, over HTTPS only.
const importer = Mixpanel.init(token, {
  ...where,
  credentials: new Mixpanel.ServiceAccountCredentials(account, secret, project),
});
await call("import", (cb) =>
  importer.import("Imported", now - 40 * 86400 * 1000, { distinct_id: "node-user", $insert_id: "node-imp-1" }, cb),
);
await call("import_batch", (cb) =>
  importer.import_batch(
    [1, 2].map((n) => ({
      event: "Imported batch",
      properties: { distinct_id: "node-user", time: now - n * 86400 * 1000, $insert_id: `node-imp-b${n}` },
    })),
    cb,
  ),
);
console.log("node sdk: all calls succeeded");
