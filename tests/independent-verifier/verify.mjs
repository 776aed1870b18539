// An independent verifier of auditgate bundles, written from docs/audit-log-format.md alone
// (no code of auditgate's, no dependencies: Node's own crypto). Tests run it beside
// auditgate-verify on the same bundles and require the same verdicts.
//
// usage: node verify.mjs BUNDLE KEY      exit 0: verified, 1: invalid, 2: unusable input
import { createHash, createPublicKey, verify as edVerify } from "node:crypto";
import { readFileSync } from "node:fs";

class Invalid extends Error {}
class Unusable extends Error {}
const sha = (...parts) => { const h = createHash("sha256"); for (const p of parts) h.update(p); return h.digest(); };
const leafHash = (b) => sha(Buffer.from([0]), b);
const nodeHash = (l, r) => sha(Buffer.from([1]), l, r);
const chainLink = (b) => sha(Buffer.from("auditgate/v1/chain\n"), b);
function b64(s, what) {
  const b = Buffer.from(s, "base64");
  if (b.toString("base64") !== s) throw new Invalid(`${what} is not canonical base64`);
  return b;
}
const hash32 = (s, what) => { const b = b64(s, what); if (b.length !== 32) throw new Invalid(`${what} is not 32 bytes`); return b; };

// Section 1: entries.
const NAMES = {
  actor: ["system", "user", "service_account", "project_token", "anonymous"],
  method: ["none", "internal", "api_token", "project_token", "oidc", "personal_token", "password", "cli"],
  outcome: ["allowed", "denied", "failed"],
  action: ("log.init events.ingest profiles.update events.query events.count events.export profiles.read " +
    "subjects.export subjects.erase retention.sweep project.create project.update project.delete token.create " +
    "token.revoke auth.rejected auth.signin auth.signin_failed auth.second_factor auth.second_factor_failed " +
    "auth.lockout auth.signout auth.break_glass auth.second_factor_enroll auth.second_factor_reset " +
    "auth.recovery_codes auth.session_end auth.provider_logout access.role_change access.grant_change " +
    "access.user_change access.properties_classify access.request audit.read audit.export audit.subject_report keys.rotate " +
    "subjects.request subjects.anonymize subjects.opt_out subjects.consent project.restore project.purge").split(" "),
};
function parseEntry(b) {
  let p = 0;
  const take = (n) => { if (p + n > b.length) throw new Invalid(`entry truncated at byte ${p}`); const s = b.subarray(p, p + n); p += n; return s; };
  const u8 = () => take(1)[0];
  const u32 = () => take(4).readUInt32BE(0);
  const u64 = () => take(8).readBigUInt64BE(0);
  const str = (max) => {
    const n = u32(); if (n > max) throw new Invalid(`a field of ${n} bytes exceeds ${max}`);
    const raw = take(n); const s = new TextDecoder("utf-8", { fatal: true });
    try { return s.decode(raw); } catch { throw new Invalid("invalid UTF-8"); }
  };
  const opt = (max) => { const t = u8(); if (t === 0) return null; if (t === 1) return str(max); throw new Invalid("bad optional tag"); };
  const name = (list) => { const s = str(4096); if (!list.includes(s)) throw new Invalid(`unknown name ${s}`); return s; };
  if (u8() !== 1) throw new Invalid("unknown entry version");
  const e = { seq: u64(), time: take(8).readBigInt64BE(0), prev: take(32), salt: take(16) };
  e.project = opt(4096); e.projectSeq = u64();
  e.actorKind = name(NAMES.actor); e.actorId = str(4096); e.method = name(NAMES.method);
  const sf = u8(); if (sf > 1) throw new Invalid("bad second_factor");
  e.action = name(NAMES.action); e.outcome = name(NAMES.outcome); e.records = u64();
  e.clientIp = opt(4096); e.userAgent = opt(4096); e.requestId = opt(4096);
  const n = u32(); if (n * 32 > b.length - p) throw new Invalid("more subjects than bytes"); e.subjects = []; for (let k = 0; k < n; k++) e.subjects.push(Buffer.from(take(32)).toString("hex"));
  e.details = str(1 << 20);
  if (p !== b.length) throw new Invalid("bytes after the last field");
  if (e.project === null && e.projectSeq !== 0n) throw new Invalid("project_seq without a project");
  return e;
}

// Section 3: RFC 9162 inclusion proof verification (2.1.3.2).
function verifyInclusion(leaf, index, size, proof, root) {
  if (index >= size) throw new Invalid("index beyond the tree");
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Invalid("inclusion proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else r = nodeHash(r, p);
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n || !r.equals(root)) throw new Invalid("inclusion proof does not lead to the root");
}

// Section 4: keys, signed notes, checkpoints.
function parseKey(text) {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text.trim());
  if (!m) throw new Unusable(`not a verifier key: ${text}`);
  const raw = Buffer.from(m[3], "base64");
  if (raw.length !== 33 || raw[0] !== 1) throw new Unusable("not an Ed25519 verifier key");
  const pk = raw.subarray(1);
  const id = sha(Buffer.from(m[1]), Buffer.from([0x0a, 0x01]), pk).subarray(0, 4).toString("hex");
  if (id !== m[2]) throw new Unusable("key id does not match the key");
  const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), pk]);
  return { text: text.trim(), name: m[1], id, key: createPublicKey({ key: der, format: "der", type: "spki" }) };
}
function openNote(note, keys) {
  const at = note.indexOf("\n\n");
  if (at < 0) throw new Invalid("a note without signatures");
  const text = note.slice(0, at + 1);
  const sigs = note.slice(at + 2).split("\n");
  if (sigs.pop() !== "") throw new Invalid("a note must end in a newline");
  const signedBy = [];
  for (const line of sigs) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Invalid("a bad signature line");
    const raw = Buffer.from(m[2], "base64");
    const id = raw.subarray(0, 4).toString("hex");
    const k = keys.find((k) => k.name === m[1] && k.id === id);
    if (!k) continue;
    if (raw.length !== 68 || !edVerify(null, Buffer.from(text), k.key, raw.subarray(4))) throw new Invalid("a signature does not verify");
    signedBy.push(k);
  }
  const body = text.split("\n");
  if (body.length !== 4 || body[3] !== "" || !/^(0|[1-9][0-9]*)$/.test(body[1])) throw new Invalid("not a checkpoint");
  return { origin: body[0], size: BigInt(body[1]), root: hash32(body[2], "root"), signedBy };
}

// Section 6: bundles.
const ORDER = {
  header: ["type", "format", "origin", "scope", "project", "from", "to"],
  headerSubject: ["type", "format", "origin", "scope", "project", "subject", "from", "to"],
  key: ["type", "vkey"], handover: ["type", "seq", "bytes", "proof", "note"],
  prefix: ["type", "size", "peaks", "last_link", "last_time"],
  entry: ["type", "seq", "bytes"], entryProof: ["type", "seq", "bytes", "proof"], checkpoint: ["type", "note"],
};
function parseLine(text, n) {
  let v;
  try { v = JSON.parse(text); } catch { if (n === 1) throw new Unusable("line 1 is not a header"); throw new Invalid(`line ${n} is not JSON`); }
  const want = v.type === "entry" && "proof" in v ? ORDER.entryProof : v.type === "header" && "subject" in v ? ORDER.headerSubject : ORDER[v.type];
  if (!want) throw new Invalid(`line ${n}: unknown line type`);
  if (JSON.stringify(Object.keys(v)) !== JSON.stringify(want) || JSON.stringify(v) !== text) throw new Invalid(`line ${n} is not canonical`);
  return v;
}
const big = (x) => BigInt(x);

function verifyBundle(text, trustedText) {
  const trusted = parseKey(trustedText);
  if (!text.endsWith("\n")) throw new Unusable("cut short");
  const lines = text.slice(0, -1).split("\n");
  const h = parseLine(lines[0], 1);
  if (h.type !== "header") throw new Unusable("no header");
  if (h.format !== "auditgate-bundle/v1") throw new Unusable("unknown format");
  const from = big(h.from), to = big(h.to);
  let i = 1; const keys = []; const handovers = [];
  for (; i < lines.length; i++) {
    const l = parseLine(lines[i], i + 1);
    if (l.type === "key") { if (handovers.length) throw new Invalid("key after hand-over"); const k = parseKey(l.vkey); if (keys.some((x) => x.text === k.text)) throw new Invalid("repeated key"); keys.push(k); }
    else if (l.type === "handover") {
      const bytes = b64(l.bytes, "entry"); const e = parseEntry(bytes);
      if (e.seq !== big(l.seq) || e.action !== "keys.rotate" || e.outcome !== "allowed") throw new Invalid("hand-over entry");
      const d = JSON.parse(e.details); const old = keys.find((k) => k.text === d.old), nw = keys.find((k) => k.text === d.new);
      if (!old || !nw || old === nw) throw new Invalid("hand-over keys");
      const cp = openNote(l.note, [old, nw]);
      if (cp.signedBy.length !== 2 || cp.origin !== h.origin || cp.size <= e.seq) throw new Invalid("hand-over checkpoint");
      verifyInclusion(leafHash(bytes), e.seq, cp.size, l.proof.map((p) => hash32(p, "proof")), cp.root);
      if (handovers.length && handovers.at(-1).size >= cp.size) throw new Invalid("hand-overs out of order");
      if (handovers.some((x) => x.old === old || x.nw === nw)) throw new Invalid("a key retired or introduced twice");
      handovers.push({ seq: e.seq, leaf: leafHash(bytes), old, nw, size: cp.size });
    } else break;
  }
  if (!keys.some((k) => k.text === trusted.text)) throw new Invalid("the trusted key is not in the bundle");
  const accepted = [keys.find((k) => k.text === trusted.text)];
  for (let grew = true; grew;) {
    grew = false;
    for (const x of handovers) {
      const a = accepted.includes(x.old), b = accepted.includes(x.nw);
      if (a !== b) { accepted.push(a ? x.nw : x.old); grew = true; }
    }
  }
  const win = (k) => [handovers.find((x) => x.nw === k)?.size ?? 0n, handovers.find((x) => x.old === k)?.size ?? (1n << 64n)];
  const checkpoint = (note) => {
    const cp = openNote(note, accepted);
    if (cp.origin !== h.origin) throw new Invalid("a checkpoint of another log");
    if (!cp.signedBy.some((k) => { const [a, b] = win(k); return a <= cp.size && cp.size <= b; })) throw new Invalid("no key valid at this size signed the checkpoint");
    return cp;
  };
  const projectSeqs = new Map();
  const projectOrder = (e, fromStart) => {
    if (e.project === null) return;
    const last = projectSeqs.get(e.project);
    const want = last !== undefined ? last + 1n : fromStart ? 0n : null;
    if (want !== null && e.projectSeq !== want) throw new Invalid("a project entry is missing");
    projectSeqs.set(e.project, e.projectSeq);
  };
  if (h.scope === "log") {
    let peaks = [], size = 0n, link = Buffer.alloc(32), time = -(1n << 63n), lastCp = -1n, endedOnCp = false;
    const push = (leaf) => { let hh = leaf, s = size; while ((s & 1n) === 1n) { hh = nodeHash(peaks.pop(), hh); s >>= 1n; } peaks.push(hh); size++; };
    const root = () => peaks.reduceRight((acc, p) => (acc === null ? p : nodeHash(p, acc)), null) ?? sha();
    for (; i < lines.length; i++) {
      const l = parseLine(lines[i], i + 1); endedOnCp = false;
      if (l.type === "prefix") {
        if (big(l.size) !== from || from === 0n || size !== 0n) throw new Invalid("misplaced prefix");
        peaks = l.peaks.map((p) => hash32(p, "peak")); size = from;
        if (peaks.length !== from.toString(2).split("").filter((c) => c === "1").length) throw new Invalid("prefix peaks");
        link = hash32(l.last_link, "link"); time = big(l.last_time);
      } else if (l.type === "entry") {
        const bytes = b64(l.bytes, "entry"); const e = parseEntry(bytes);
        if (size !== big(l.seq) || e.seq !== size || e.seq >= to || (from > 0n && size < from)) throw new Invalid(`entry ${l.seq} out of place`);
        if (!e.prev.equals(link)) throw new Invalid(`entry ${e.seq}: chain broken`);
        if (e.time < time) throw new Invalid(`entry ${e.seq}: time goes back`);
        projectOrder(e, from === 0n);
        const leaf = leafHash(bytes);
        if (e.action === "keys.rotate" && e.outcome === "allowed" && !handovers.some((x) => x.seq === e.seq && x.leaf.equals(leaf))) throw new Invalid("a rotation without its hand-over");
        push(leaf); link = chainLink(bytes); time = e.time;
      } else if (l.type === "checkpoint") {
        const cp = checkpoint(l.note);
        if (cp.size !== size || cp.size <= lastCp || size < from || (from > 0n && size === from)) throw new Invalid("checkpoint out of place");
        if (!cp.root.equals(root())) throw new Invalid("checkpoint root mismatch");
        lastCp = cp.size; endedOnCp = true;
        if (size === to && i !== lines.length - 1) throw new Invalid("lines after the last checkpoint");
      } else throw new Invalid(`a ${l.type} line out of place`);
    }
    if (!endedOnCp || lastCp !== to) throw new Invalid("truncated");
  } else if (h.scope === "project" || h.scope === "subject") {
    const subject = h.scope === "subject";
    if (from !== 0n || h.project === null || subject !== ("subject" in h)) throw new Invalid("bad project header");
    if (subject && !/^[0-9a-f]{64}$/.test(h.subject)) throw new Invalid("bad subject");
    const c = parseLine(lines[i], i + 1); i++;
    if (c.type !== "checkpoint") throw new Invalid("the checkpoint must come first");
    const cp = checkpoint(c.note);
    if (cp.size !== to) throw new Invalid("checkpoint size is not `to`");
    let last = null, link = null, time = -(1n << 63n);
    for (; i < lines.length; i++) {
      const l = parseLine(lines[i], i + 1);
      if (l.type !== "entry" || !l.proof) throw new Invalid("project bundles hold entries with proofs");
      const bytes = b64(l.bytes, "entry"); const e = parseEntry(bytes);
      if (e.seq !== big(l.seq) || (last !== null && e.seq <= last) || e.project !== h.project) throw new Invalid("entry out of place");
      if (last !== null && last + 1n === e.seq && !e.prev.equals(link)) throw new Invalid("chain broken");
      if (e.time < time) throw new Invalid("time goes back");
      if (subject) { if (!e.subjects.includes(h.subject)) throw new Invalid("an entry that does not name the subject"); }
      else projectOrder(e, true);
      verifyInclusion(leafHash(bytes), e.seq, cp.size, l.proof.map((p) => hash32(p, "proof")), cp.root);
      last = e.seq; link = chainLink(bytes); time = e.time;
    }
    if (last === null || last + 1n !== to) throw new Invalid("the project's newest entries are missing");
  } else throw new Invalid("unknown scope");
  if (h.scope !== "subject" && "subject" in h) throw new Invalid("a subject outside a subject bundle");
  return { scope: h.scope, from: h.from, to: h.to };
}

const [bundlePath, key] = process.argv.slice(2);
try {
  const key_ = key && key.includes("+") ? key : readFileSync(key, "utf8");
  const report = verifyBundle(readFileSync(bundlePath, "utf8"), key_);
  console.log(JSON.stringify({ ok: true, report }));
  process.exit(0);
} catch (e) {
  const code = e instanceof Unusable ? 2 : e instanceof Invalid ? 1 : 2;
  console.log(JSON.stringify({ ok: false, error: String(e.message) }));
  process.exit(code);
}
