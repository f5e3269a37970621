// Seeded generator of a host directory tree that exercises every on-disk shape
// an ext4 reader must handle. Names are raw bytes (Buffer paths), so non-UTF-8
// names survive; the manifest says what was made so tests can assert coverage.
//
// Host tools used: coreutils (touch, mkfifo, mknod) and setfattr from the `attr`
// package, which .ci/run installs; suites skip without it (attrToolsMissing).

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { ensureAttrTools } from "./exec.js";

export type EntryKind = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";

export interface TreeEntry {
  /** Path relative to the tree root, raw bytes, no leading slash. */
  path: Buffer;
  /** Same path decoded as latin1 (a lossless byte<->char mapping), for keys and messages. */
  key: string;
  kind: EntryKind;
  /** Apparent size for files, target length for symlinks. */
  size: number;
  /** Bytes actually written (files), excluding holes. */
  dataBytes?: number;
  target?: Buffer;
  /** Coverage labels: "fragmented400", "triple-indirect", "non-utf8-name", ... */
  tags: string[];
}

export interface TreeLimits {
  /** Longest symlink target; ext4 stores a slow symlink in one block, so < block size. */
  maxSymlinkTarget: number;
  /** Size of the one big xattr value (cannot live in-inode). */
  bigXattrSize: number;
}

export interface TreeManifest {
  root: string;
  seed: number;
  scale: "small" | "full";
  limits: TreeLimits;
  entries: TreeEntry[];
  /** Tag -> number of entries carrying it. */
  coverage: Record<string, number>;
  totals: { files: number; dirs: number; symlinks: number; fifos: number; devices: number; dataBytes: number; apparentBytes: number };
  /** Timestamps (ns since the epoch) used on purpose: pre-1970, 2038 edges, post-2038. */
  timePalette: bigint[];
}

export interface TreeOptions {
  seed: number;
  scale?: "small" | "full";
  /** Defaults to 4000 (fits 4k blocks); pass blockSize - 1 for smaller blocks. */
  maxSymlinkTarget?: number;
  bigXattrSize?: number;
}

/** Name of the file whose timestamps images.ts probes to learn what mkfs -d keeps. */
export const TIME_PROBE = "times/probe";
/** Host times of TIME_PROBE: a pre-1970 atime with nanoseconds, a post-2038 mtime. */
export const PROBE_ATIME = "-1000000000.123456789";
export const PROBE_MTIME = "4102444800.000000001";

/** Byte offset where a 1k-block map needs TIND: past 12 direct + 256 IND + 256^2 DIND blocks. */
export const TIND_OFFSET_1K = (12 + 256 + 256 * 256) * 1024;

// Timestamps as `touch -d @SECONDS` strings; coreutils parses nanoseconds exactly,
// unlike fs.utimesSync, whose doubles lose them.
const TIME_PALETTE = [
  "-2147483648", // INT32_MIN: oldest time a 32-bit field holds (1901)
  "-1000000000.123456789", // 1938
  "-1.000000001", // just before the epoch: sec -2, nsec 999999999
  "0",
  "1000000000.5",
  "1700000000.123456789",
  "2147483647.999999999", // last second before the 2038 wrap
  "2147483648.000000001", // first second after it
  "4102444800.000000001", // 2100
  "13569465600.25", // 2400, near the end of ext4's 34-bit range (2446)
];

export function touchArgToNs(t: string): bigint {
  const neg = t.startsWith("-");
  const [i, f = ""] = (neg ? t.slice(1) : t).split(".");
  const ns = BigInt(i) * 1_000_000_000n + BigInt((f + "000000000").slice(0, 9));
  return neg ? -ns : ns;
}

/** Small fast PRNG (sfc32); the same seed gives the same tree. */
class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9; this.b = 0x243f6a88; this.c = 0xb7e15162; this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  int(lo: number, hi: number): number { return lo + (this.u32() % (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T { return xs[this.u32() % xs.length]!; }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
  /** Random bytes with no all-zero 1k run, so mkfs never turns data into a hole. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) b[i] = this.u32() & 0xff;
    for (let k = 0; k < n; k += 512) b[k] = (b[k]! | 1);
    return b;
  }
}

const MODES_FILE = [0o7777, 0o4755, 0o2755, 0o1755, 0o6711, 0o0000, 0o0644, 0o0600, 0o0444, 0o0777, 0o3070, 0o5007, 0o4000, 0o2000, 0o1000];
const MODES_DIR = [0o755, 0o1777, 0o2775, 0o3700, 0o0500, 0o7777, 0o0711];
// 65535 is (u16)-1; > 65535 needs the *_high fields; 4e9 is near the u32 top.
const IDS = [0, 1, 1000, 65534, 65535, 65536, 123456, 4000000000];

/** Quote raw bytes for bash with $'..' escapes (names need not be UTF-8). */
export function shQuote(p: Buffer): string {
  let s = "$'";
  for (const c of p) {
    const safe = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2e || c === 0x2f || c === 0x2d || c === 0x5f;
    s += safe ? String.fromCharCode(c) : "\\x" + c.toString(16).padStart(2, "0");
  }
  return s + "'";
}

const B = (s: string): Buffer => Buffer.from(s, "utf8");
const L = (s: string): Buffer => Buffer.from(s, "latin1");
const join = (...parts: Buffer[]): Buffer => {
  const out: Buffer[] = [];
  parts.forEach((p, i) => { if (i) out.push(B("/")); out.push(p); });
  return Buffer.concat(out);
};

interface Meta { mode?: number; uid?: number; gid?: number; atime?: string; mtime?: string }

class Builder {
  readonly entries: TreeEntry[] = [];
  private readonly meta = new Map<string, { path: Buffer; kind: EntryKind; m: Meta }>();
  private readonly xattrs: { rel: string; name: string; value: Buffer }[] = [];
  private readonly fifos: Buffer[] = [];
  private readonly devices: { rel: Buffer; type: "c" | "b"; major: number; minor: number }[] = [];
  constructor(readonly root: Buffer, readonly rng: Rng) {}

  abs(rel: Buffer): Buffer { return join(this.root, rel); }

  private add(rel: Buffer, kind: EntryKind, size: number, tags: string[], extra: Partial<TreeEntry> = {}): TreeEntry {
    const e: TreeEntry = { path: rel, key: rel.toString("latin1"), kind, size, tags, ...extra };
    this.entries.push(e);
    this.meta.set(e.key, { path: rel, kind, m: {} });
    return e;
  }

  dir(rel: Buffer | string, tags: string[] = []): Buffer {
    const r = typeof rel === "string" ? B(rel) : rel;
    fs.mkdirSync(this.abs(r));
    this.add(r, "dir", 0, tags);
    return r;
  }

  file(rel: Buffer | string, content: Buffer | number, tags: string[] = []): TreeEntry {
    const r = typeof rel === "string" ? B(rel) : rel;
    const data = typeof content === "number" ? this.rng.bytes(content) : content;
    fs.writeFileSync(this.abs(r), data);
    return this.add(r, "file", data.length, tags, { dataBytes: data.length });
  }

  /** A file with data islands at the given offsets, then truncated to `size` (holes elsewhere). */
  sparse(rel: string, size: number, islands: { at: number; len: number }[], tags: string[]): TreeEntry {
    const r = B(rel);
    const fd = fs.openSync(this.abs(r), "w");
    let data = 0;
    try {
      for (const { at, len } of islands) {
        fs.writeSync(fd, this.rng.bytes(len), 0, len, at);
        data += len;
      }
      fs.ftruncateSync(fd, size);
    } finally {
      fs.closeSync(fd);
    }
    return this.add(r, "file", size, tags, { dataBytes: data });
  }

  symlink(rel: Buffer | string, target: Buffer | string, tags: string[] = []): TreeEntry {
    const r = typeof rel === "string" ? B(rel) : rel;
    const t = typeof target === "string" ? B(target) : target;
    fs.symlinkSync(t, this.abs(r));
    return this.add(r, "symlink", t.length, tags, { target: t });
  }

  link(existing: Buffer | string, rel: Buffer | string, tags: string[] = []): TreeEntry {
    const from = typeof existing === "string" ? B(existing) : existing;
    const r = typeof rel === "string" ? B(rel) : rel;
    fs.linkSync(this.abs(from), this.abs(r));
    const orig = this.entries.find((e) => e.path.equals(from))!;
    orig.tags.includes("hardlink") || orig.tags.push("hardlink");
    const e: TreeEntry = { path: r, key: r.toString("latin1"), kind: orig.kind, size: orig.size, dataBytes: 0, tags: ["hardlink", ...tags] };
    this.entries.push(e);
    return e;
  }

  fifo(rel: string, tags: string[] = []): void {
    this.fifos.push(B(rel));
    this.add(B(rel), "fifo", 0, ["fifo", ...tags]);
  }

  device(rel: string, type: "c" | "b", major: number, minor: number): void {
    this.devices.push({ rel: B(rel), type, major, minor });
    this.add(B(rel), type === "c" ? "chardev" : "blockdev", 0, ["device"]);
  }

  setMeta(rel: Buffer | string, m: Meta): void {
    const key = (typeof rel === "string" ? B(rel) : rel).toString("latin1");
    const rec = this.meta.get(key);
    if (!rec) throw new Error(`setMeta: unknown entry ${key}`);
    Object.assign(rec.m, m);
  }

  xattr(rel: string, name: string, value: Buffer): void {
    this.xattrs.push({ rel, name, value });
    const e = this.entries.find((x) => x.key === rel)!;
    e.tags.includes("xattr") || e.tags.push("xattr");
  }

  /** Specials, owners, modes, xattrs, then times last (children change a dir's mtime). */
  finish(): void {
    const root = this.root.toString();
    const run = (script: string): void => { execFileSync("bash", ["-e", "-c", script], { cwd: root, stdio: ["ignore", "ignore", "pipe"] }); };
    if (this.fifos.length) run(`mkfifo -- ${this.fifos.map(shQuote).join(" ")}`);
    for (const d of this.devices) run(`mknod -- ${shQuote(d.rel)} ${d.type} ${d.major} ${d.minor}`);

    // chown clears setuid/setgid, so owners go first, then modes.
    for (const { path: rel, m } of this.meta.values()) {
      if (m.uid !== undefined) fs.lchownSync(this.abs(rel), m.uid, m.gid ?? m.uid);
    }
    for (const { path: rel, kind, m } of this.meta.values()) {
      if (m.mode !== undefined && kind !== "symlink") fs.chmodSync(this.abs(rel), m.mode);
    }

    if (this.xattrs.length) {
      // One setfattr run for all attributes (getfattr dump format, hex values).
      let dump = "";
      const byFile = new Map<string, string[]>();
      for (const x of this.xattrs) {
        const lines = byFile.get(x.rel) ?? [];
        lines.push(`${x.name}=0x${x.value.toString("hex")}`);
        byFile.set(x.rel, lines);
      }
      for (const [rel, lines] of byFile) dump += `# file: ${rel}\n${lines.join("\n")}\n\n`;
      execFileSync("setfattr", ["--restore=-"], { cwd: root, input: dump, stdio: ["pipe", "ignore", "pipe"] });
    }

    // touch -h never follows symlinks nor opens FIFOs; batch paths per timestamp.
    const groups = new Map<string, Buffer[]>();
    for (const { path: rel, m } of this.meta.values()) {
      for (const [flag, t] of [["-a", m.atime], ["-m", m.mtime]] as const) {
        if (t === undefined) continue;
        const k = `${flag} -d @${t}`;
        const g = groups.get(k) ?? [];
        g.push(rel);
        groups.set(k, g);
      }
    }
    const cmds = [...groups].map(([k, rels]) => `touch -h ${k} -- ${rels.map(shQuote).join(" ")}`);
    if (cmds.length) run(cmds.join("\n"));
  }
}

/**
 * Generates the tree into `dir` (must be empty or absent). Full scale is about
 * 30 MiB of data and ~3600 entries; small scale skips the costly shapes.
 */
export function generateTree(dir: string, opts: TreeOptions): TreeManifest {
  const scale = opts.scale ?? "full";
  const full = scale === "full";
  const limits: TreeLimits = { maxSymlinkTarget: opts.maxSymlinkTarget ?? 4000, bigXattrSize: opts.bigXattrSize ?? 3000 };
  ensureAttrTools();
  fs.mkdirSync(dir, { recursive: true });
  if (fs.readdirSync(dir).length) throw new Error(`generateTree: ${dir} is not empty`);
  const rng = new Rng(opts.seed);
  const t = new Builder(Buffer.from(dir), rng);

  // --- regular files: sizes around inline-data limits and block multiples ---
  t.dir("files");
  t.file("files/empty", 0, ["empty"]);
  t.file("files/empty2", 0, ["empty"]);
  for (const n of [1, 59, 60, 61, 100, 156, 160, 200, 4000]) t.file(`files/size-${n}`, n, ["small"]);
  for (const blk of [1024, 2048, 4096, 65536]) {
    for (const n of [blk - 1, blk, blk + 1]) t.file(`files/blk${blk}-${n}`, n, [n === blk ? "block-multiple" : "block-multiple-pm1"]);
  }
  t.file("files/blk65536x2", 131072, ["block-multiple"]);
  for (let i = 0; i < (full ? 40 : 10); i++) t.file(`files/small-${String(i).padStart(2, "0")}`, rng.int(0, 65536), ["small"]);
  t.file("files/large-1m", 1 << 20, ["large"]);
  if (full) {
    t.file("files/large-3m", 3 * (1 << 20) + 123, ["large"]);
    t.file("files/large-5m", 5 * (1 << 20) - 7, ["large"]);
  }
  // All zeros but not sparse on the host: mkfs -d may store it as holes.
  t.file("files/zeros-64k", Buffer.alloc(65536), ["zeros"]);

  // --- sparse files ---
  t.dir("sparse");
  t.sparse("sparse/hole-start", 1 << 20, [{ at: (1 << 20) - 10240, len: 10240 }], ["sparse", "hole-start"]);
  t.sparse("sparse/hole-middle", 2 << 20, [{ at: 0, len: 8192 }, { at: (2 << 20) - 8192, len: 8192 }], ["sparse", "hole-middle"]);
  t.sparse("sparse/hole-end", 3 << 20, [{ at: 0, len: 5000 }], ["sparse", "hole-end"]);
  t.sparse("sparse/all-hole", 10 << 20, [], ["sparse", "all-hole"]);
  t.sparse("sparse/unaligned", 700_001, [1, 4095, 4097, 65535, 300_000, 699_000].map((at, i) => ({ at, len: 1 + i * 700 })), ["sparse"]);
  // Unwritten-extent target for images.ts: data in the first and last 64 KiB only.
  t.dir("unwritten");
  t.sparse("unwritten/prealloc", 1 << 20, [{ at: 0, len: 65536 }, { at: (1 << 20) - 65536, len: 65536 }], ["sparse", "unwritten-target"]);

  // 4 KiB islands every 8 KiB: one extent per island at <= 4k blocks. 400 extents
  // overflow the inode (4) into leaf blocks: depth 1; 2000 need > 4 leaves
  // (340 per 4k leaf): depth 2.
  const islands = (n: number) => Array.from({ length: n }, (_, i) => ({ at: i * 8192, len: 4096 }));
  t.sparse("fragmented400", 400 * 8192 - 4096, islands(400), ["sparse", "fragmented400"]);
  if (full) {
    t.sparse("fragmented2000", 2000 * 8192 - 4096, islands(2000), ["sparse", "fragmented2000"]);
    // Without extents at 1k blocks: direct, IND (12 KiB), DIND (268 KiB), TIND (>= 65804 KiB).
    t.sparse("triple-indirect", TIND_OFFSET_1K + (4 << 20) + 3, [
      { at: 0, len: 5000 }, { at: 20 * 1024, len: 3000 }, { at: 5 << 20, len: 7000 },
      { at: TIND_OFFSET_1K + 1024, len: 9000 }, { at: TIND_OFFSET_1K + (4 << 20) - 100, len: 103 },
    ], ["sparse", "triple-indirect"]);
  }

  // --- directories: a big one (htree), names of all sorts ---
  const bigN = full ? 3000 : 300;
  t.dir("bigdir", ["htree-dir"]);
  for (let i = 0; i < bigN; i++) {
    // Every 7th name has bytes >= 0x80 so signed and unsigned hashes differ.
    const base = `entry-${String(i).padStart(5, "0")}-${"x".repeat(rng.int(0, 40))}`;
    const name = i % 7 === 3 ? Buffer.concat([L(base), Buffer.from([0xc3, 0xa9, 0x80 + (i % 64), 0xff])]) : B(base);
    const rel = join(B("bigdir"), name);
    if (i % 97 === 5) t.dir(rel);
    else if (i % 53 === 7) t.symlink(rel, `target-${i}`, ["fast-symlink"]);
    else t.file(rel, i % 11 === 0 ? rng.int(1, 300) : 0, i % 7 === 3 ? ["non-utf8-name"] : []);
  }
  t.dir("meddir");
  for (let i = 0; i < (full ? 200 : 40); i++) t.file(`meddir/f${i}`, rng.int(0, 100));
  t.dir("emptydir", ["empty-dir"]);

  t.dir("names");
  for (const n of ["café", "naïve-日本語", "emoji-🎉", "Ω", "with space", "tab\there", "new\nline", "back\\slash", "eq=ual", "-dash", ".hidden", "..dots", "...", "$(x)", "quote'\"", "*?[]"]) {
    t.file(join(B("names"), B(n)), rng.int(0, 50), /[^\x00-\x7f]/.test(n) ? ["utf8-name"] : ["odd-ascii-name"]);
  }
  const bad = [[0xff, 0xfe], [0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0x63, 0x61, 0x66, 0xe9], [0xf8, 0x88, 0x80, 0x80, 0x80]];
  bad.forEach((bytes, i) => t.file(join(B("names"), Buffer.from(bytes)), 10 + i, ["non-utf8-name"]));
  const badDir = t.dir(join(B("names"), Buffer.from([0x64, 0xff, 0x64])), ["non-utf8-name"]);
  t.file(join(badDir, Buffer.from([0xfe, 0x41])), 33, ["non-utf8-name"]);
  t.file(join(B("names"), B("L".repeat(255))), 20, ["long-name"]);
  t.file(join(B("names"), B("é".repeat(127) + "x")), 21, ["long-name", "utf8-name"]);
  t.file(join(B("names"), Buffer.alloc(255, 0xfd)), 22, ["long-name", "non-utf8-name"]);
  const longDir = t.dir(join(B("names"), B("D".repeat(255))), ["long-name"]);
  t.file(join(longDir, B("F".repeat(255))), 23, ["long-name"]);

  let deep = B("deep");
  t.dir(deep);
  for (let i = 1; i <= 30; i++) deep = t.dir(join(deep, B(`level-${String(i).padStart(2, "0")}`)), i === 30 ? ["deep"] : []);
  t.file(join(deep, B("leaf.txt")), B("the bottom\n"), ["deep"]);

  // --- symlinks ---
  t.dir("links");
  const slow = (n: number): string => {
    let s = "";
    while (s.length < n) s += `seg${s.length}/`;
    return s.slice(0, n);
  };
  t.symlink("links/fast", "../files/size-1", ["fast-symlink"]);
  t.symlink("links/fast59", slow(59), ["fast-symlink"]);
  t.symlink("links/slow60", slow(60), ["slow-symlink"]);
  t.symlink("links/slow61", slow(61), ["slow-symlink"]);
  t.symlink("links/slow500", slow(500), ["slow-symlink"]);
  if (limits.maxSymlinkTarget >= 1023) t.symlink("links/slow1023", slow(1023), ["slow-symlink"]);
  t.symlink("links/slowmax", slow(limits.maxSymlinkTarget), ["slow-symlink"]);
  t.symlink("links/dangling", "does/not/exist", ["dangling-symlink"]);
  t.symlink("links/dir", "../deep", ["dir-symlink"]);
  t.symlink("links/absolute", "/etc/passwd", ["fast-symlink"]);
  t.symlink("links/self", "self", ["fast-symlink"]);
  t.symlink(join(B("links"), Buffer.from([0x6c, 0xff])), Buffer.from([0x2e, 0x2e, 0x2f, 0xfe, 0xfd]), ["non-utf8-name"]);

  // --- hard links (3 names across dirs, 2 names, one with a non-UTF-8 name) ---
  t.dir("hardlinks");
  t.dir("hardlinks/sub");
  t.file("hardlinks/three", 5000, ["hardlink"]);
  t.link("hardlinks/three", "hardlinks/sub/three-b");
  t.link("hardlinks/three", "files/three-c");
  t.file("hardlinks/two", 77, ["hardlink"]);
  t.link("hardlinks/two", join(B("hardlinks/sub"), Buffer.from([0x74, 0xe9])));

  // --- FIFOs, devices ---
  t.dir("special");
  t.fifo("special/fifo1");
  t.fifo("special/fifo2");
  t.device("special/null", "c", 1, 3);
  t.device("special/blk", "b", 7, 200);

  // --- xattrs (user.* only: trusted/security would need more than root on some hosts) ---
  t.dir("xattr");
  t.file("xattr/small", 10);
  t.xattr("xattr/small", "user.a", B("hello"));
  t.xattr("xattr/small", "user.empty", Buffer.alloc(0));
  t.xattr("xattr/small", "user.binary", Buffer.from([0, 1, 2, 0xff, 0, 0x80]));
  t.file("xattr/many", 10);
  // Sized to fit one 1k block next to the inode (only ea_inode values may spill).
  for (let i = 0; i < 12; i++) t.xattr("xattr/many", `user.attr${i}`, rng.bytes(rng.int(1, 24)));
  t.xattr("xattr/many", `user.${"n".repeat(120)}`, B("long name"));
  t.file("xattr/big", 100);
  t.xattr("xattr/big", "user.big", rng.bytes(limits.bigXattrSize));
  t.xattr("xattr/big", "user.small", B("s"));
  t.entries.find((e) => e.key === "xattr/big")!.tags.push("xattr-big");
  t.dir("xattr/dir");
  t.xattr("xattr/dir", "user.dirattr", B("on a directory"));
  t.file("xattr/dir/inner", 0);
  t.xattr("xattr/dir/inner", "user.inner", B("x"));
  t.file("xattr/inline-small", 40);
  t.xattr("xattr/inline-small", "user.i", B("fits next to inline data"));

  // --- modes, owners, times: explicit showcases, then random for the rest ---
  t.dir("modes");
  for (const m of MODES_FILE) {
    const rel = `modes/f${m.toString(8).padStart(4, "0")}`;
    t.file(rel, 3, [...(m & 0o4000 ? ["setuid"] : []), ...(m & 0o2000 ? ["setgid"] : []), ...(m & 0o1000 ? ["sticky"] : [])]);
    t.setMeta(rel, { mode: m });
  }
  for (const m of MODES_DIR) {
    const rel = `modes/d${m.toString(8).padStart(4, "0")}`;
    t.dir(rel, m & 0o1000 ? ["sticky"] : []);
    t.setMeta(rel, { mode: m });
  }
  t.dir("owners");
  for (const id of IDS) {
    t.file(`owners/u${id}`, 1, ["owner"]);
    t.setMeta(`owners/u${id}`, { uid: id, gid: IDS[(IDS.indexOf(id) + 3) % IDS.length]! });
  }
  t.symlink("owners/link", "u1000", ["owner"]);
  t.setMeta("owners/link", { uid: 123456, gid: 65536 });
  t.dir("times");
  TIME_PALETTE.forEach((ts, i) => {
    t.file(`times/a${i}`, 1, ["timestamp"]);
    t.setMeta(`times/a${i}`, { atime: ts, mtime: TIME_PALETTE[(i + 5) % TIME_PALETTE.length] });
  });
  t.file(TIME_PROBE, 1, ["timestamp", "time-probe"]);
  t.setMeta(TIME_PROBE, { atime: PROBE_ATIME, mtime: PROBE_MTIME });
  t.symlink("times/link", "a0", ["timestamp"]);
  t.setMeta("times/link", { atime: TIME_PALETTE[1], mtime: TIME_PALETTE[8] });

  // Everything outside bigdir/meddir gets random owner/mode/times too.
  for (const e of t.entries) {
    if (/^(bigdir|meddir)\//.test(e.key) || /^(modes|owners|times)\//.test(e.key) || e.tags.includes("hardlink")) continue;
    const m: Meta = {};
    if (rng.chance(0.5)) { m.uid = rng.pick(IDS); m.gid = rng.pick(IDS); }
    if (e.kind === "file" && rng.chance(0.3)) m.mode = rng.pick(MODES_FILE);
    m.atime = rng.pick(TIME_PALETTE);
    m.mtime = rng.pick(TIME_PALETTE);
    t.setMeta(e.path, m);
  }
  t.finish();

  const allTags = t.entries.flatMap((e) => e.tags);
  const coverage: Record<string, number> = {};
  for (const tag of allTags) coverage[tag] = (coverage[tag] ?? 0) + 1;
  const modeTags = { setuid: 0o4000, setgid: 0o2000, sticky: 0o1000 };
  for (const [tag, bit] of Object.entries(modeTags)) {
    coverage[tag] = t.entries.filter((e) => e.kind !== "symlink" && (fs.lstatSync(t.abs(e.path)).mode & bit)).length;
  }
  const nonLinks = t.entries.filter((e) => !(e.tags.includes("hardlink") && e.dataBytes === 0));
  return {
    root: dir,
    seed: opts.seed,
    scale,
    limits,
    entries: t.entries,
    coverage,
    totals: {
      files: t.entries.filter((e) => e.kind === "file").length,
      dirs: t.entries.filter((e) => e.kind === "dir").length,
      symlinks: t.entries.filter((e) => e.kind === "symlink").length,
      fifos: t.entries.filter((e) => e.kind === "fifo").length,
      devices: t.entries.filter((e) => e.kind === "chardev" || e.kind === "blockdev").length,
      dataBytes: nonLinks.reduce((s, e) => s + (e.dataBytes ?? 0), 0),
      apparentBytes: nonLinks.filter((e) => e.kind === "file").reduce((s, e) => s + e.size, 0),
    },
    timePalette: TIME_PALETTE.map(touchArgToNs),
  };
}
