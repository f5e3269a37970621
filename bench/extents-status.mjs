// Extent status tree: the sorted array with binary search (host/fs/extents-status.ts)
// against a balanced tree (a treap with split/join, what an rbtree costs in JS),
// on the operations the write and read paths make: appending extents as a file
// grows, inserting at random places (random writes into holes), and lookups in
// order (readahead) and at random. Prints ns per operation for trees of 16 to
// 65536 extents. `node bench/extents-status.mjs [--quick]`.

import { buildSync } from "esbuild";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = process.argv.includes("--quick");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-esbench-"));
let ExtentStatusTree, ES;
try {
  const out = path.join(tmp, "es.mjs");
  buildSync({ entryPoints: [path.join(ROOT, "host/fs/extents-status.ts")], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "error" });
  ({ ExtentStatusTree, ES } = await import(pathToFileURL(out).href));
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

// ---- the alternative: a treap of extents keyed by lblk (insert replaces what it overlaps) ----
class TNode {
  constructor(lblk, len, pblk, status) {
    this.lblk = lblk; this.len = len; this.pblk = pblk; this.status = status;
    this.prio = (Math.random() * 0x7fffffff) | 0; this.l = null; this.r = null;
  }
}
/** Splits into (< key, >= key) by lblk. */
function split(t, key) {
  if (!t) return [null, null];
  if (t.lblk < key) { const [a, b] = split(t.r, key); t.r = a; return [t, b]; }
  const [a, b] = split(t.l, key); t.l = b; return [a, t];
}
function join(a, b) {
  if (!a) return b;
  if (!b) return a;
  if (a.prio > b.prio) { a.r = join(a.r, b); return a; }
  b.l = join(a, b.l); return b;
}
function last(t) { if (!t) return null; while (t.r) t = t.r; return t; }
class TreapTree {
  constructor() { this.root = null; this.seq = 0; }
  lookup(lblk) {
    let t = this.root, best = null;
    while (t) { if (t.lblk <= lblk) { best = t; t = t.r; } else t = t.l; }
    return best && lblk < best.lblk + best.len ? best : undefined;
  }
  insert(lblk, len, pblk, status) {
    const end = lblk + len;
    let [left, rest] = split(this.root, lblk);
    let [mid, right] = split(rest, end);
    // The extent before the range may run into it: cut it, keeping a right remainder.
    const p = last(left);
    if (p && p.lblk + p.len > lblk) {
      const pend = p.lblk + p.len;
      p.len = lblk - p.lblk;
      if (pend > end) right = join(new TNode(end, pend - end, p.pblk + (end - p.lblk), p.status), right);
    }
    // The last extent inside the range may run past it.
    const m = last(mid);
    if (m && m.lblk + m.len > end) right = join(new TNode(end, m.lblk + m.len - end, m.pblk + (end - m.lblk), m.status), right);
    this.root = join(join(left, new TNode(lblk, len, pblk, status)), right);
    this.seq++;
  }
}

function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

function time(fn, ops) {
  let best = Infinity;
  for (let rep = 0; rep < (quick ? 3 : 7); rep++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / ops);
  }
  return best;
}

const sizes = quick ? [16, 256, 4096] : [16, 256, 4096, 65536];
const rows = [];
for (const n of sizes) {
  const make = (Kind) => new Kind();
  for (const [name, Kind] of [["sorted array", ExtentStatusTree], ["treap", TreapTree]]) {
    // Append: extents one block apart with unrelated pblks (no merging), as a fragmented file grows.
    // Small trees are built many times over, so every timing covers enough operations to leave JIT warm-up out.
    const trees = Math.max(1, Math.ceil(100000 / n));
    const append = time(() => { for (let k = 0; k < trees; k++) { const t = make(Kind); for (let i = 0; i < n; i++) t.insert(i * 2, 1, 1000 + i * 7, ES.WRITTEN); } }, n * trees);
    // Random: the same extents inserted in random order.
    const order = Array.from({ length: n }, (_, i) => i);
    const r = rng(n);
    for (let i = n - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
    const random = time(() => { for (let k = 0; k < trees; k++) { const t = make(Kind); for (const i of order) t.insert(i * 2, 1, 1000 + i * 7, ES.WRITTEN); } }, n * trees);
    const full = make(Kind);
    for (let i = 0; i < n; i++) full.insert(i * 2, 1, 1000 + i * 7, ES.WRITTEN);
    const lookups = Math.max(n * 4, 200000);
    let sink = 0;
    const seqLookup = time(() => { for (let k = 0; k < lookups; k++) sink += full.lookup(k % (2 * n))?.pblk ?? 0; }, lookups);
    const probes = Array.from({ length: 4096 }, () => Math.floor(r() * 2 * n));
    const randLookup = time(() => { for (let k = 0; k < lookups; k++) sink += full.lookup(probes[k & 4095])?.pblk ?? 0; }, lookups);
    if (sink === -1) console.log(sink);
    rows.push({ n, name, append, random, seqLookup, randLookup });
  }
}

const f = (x) => x.toFixed(0).padStart(7);
console.log("| extents | structure | append ns/op | random insert ns/op | lookup in order ns/op | random lookup ns/op |");
console.log("|---:|---|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.n} | ${r.name} | ${f(r.append)} | ${f(r.random)} | ${f(r.seqLookup)} | ${f(r.randLookup)} |`);
