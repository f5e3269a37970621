// Reading a host tree without disturbing it: raw-byte paths, O_NOATIME reads,
// xattrs via one getfattr run, and timestamp snapshots.
//
// Why snapshots: the host mounts with relatime, so mkfs -d, cp and our own
// readdir/readlink update atimes as they read. What an image records is the
// atime *before* its builder read the tree, so comparisons use a snapshot
// taken just before that, not a later lstat.

import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { ensureAttrTools, runSync } from "./exec.js";

export const joinBuf = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from("/"), name]);

export interface HostEntry {
  /** Relative path bytes ("" for the root). */
  rel: Buffer;
  abs: Buffer;
  st: fs.BigIntStats;
}

/** Depth-first walk, parents before children, names sorted bytewise; lstat before any read. */
export function walkHost(root: string, visit: (e: HostEntry) => void): void {
  const rootBuf = Buffer.from(root);
  const rec = (rel: Buffer, abs: Buffer): void => {
    const names = fs.readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare);
    const kids = names.map((n) => {
      const r = rel.length ? joinBuf(rel, n) : n;
      const a = joinBuf(abs, n);
      return { rel: r, abs: a, st: fs.lstatSync(a, { bigint: true }) };
    });
    for (const k of kids) {
      visit(k);
      if (k.st.isDirectory()) rec(k.rel, k.abs);
    }
  };
  rec(Buffer.alloc(0), rootBuf);
}

export interface TimeStamp { atimeNs: bigint; mtimeNs: bigint }
/** latin1 relative path -> times. */
export type TimeSnapshot = Map<string, TimeStamp>;

/** Relative paths of every entry under root ("" first for the root itself). Reads directories. */
export function listTree(root: string): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(0)];
  walkHost(root, (e) => out.push(e.rel));
  return out;
}

/**
 * Times of the listed paths by lstat alone: no directory is read, so no atime
 * moves while taking it (a walk would update the very atimes it records).
 */
export function snapshotListed(root: string, rels: Buffer[]): { times: TimeSnapshot; stats: Map<string, fs.BigIntStats> } {
  const times: TimeSnapshot = new Map();
  const stats = new Map<string, fs.BigIntStats>();
  const rootBuf = Buffer.from(root);
  for (const rel of rels) {
    const st = fs.lstatSync(rel.length ? joinBuf(rootBuf, rel) : rootBuf, { bigint: true });
    const key = rel.toString("latin1");
    times.set(key, { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs });
    stats.set(key, st);
  }
  return { times, stats };
}

/** Times of every entry, taken while walking: each dir is lstat'ed before it is read. */
export function snapshotTimes(root: string): TimeSnapshot {
  const snap: TimeSnapshot = new Map();
  const st = fs.lstatSync(root, { bigint: true });
  snap.set("", { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs });
  walkHost(root, (e) => snap.set(e.rel.toString("latin1"), { atimeNs: e.st.atimeNs, mtimeNs: e.st.mtimeNs }));
  return snap;
}

/** Allocated bytes and entry count (hard links counted once for bytes). */
export function diskUsage(root: string): { bytes: number; entries: number; files: { size: number; alloc: number }[] } {
  let bytes = 0;
  let entries = 0;
  const seen = new Set<bigint>();
  const files: { size: number; alloc: number }[] = [];
  walkHost(root, (e) => {
    entries++;
    if (seen.has(e.st.ino)) return;
    seen.add(e.st.ino);
    const alloc = Number(e.st.blocks) * 512;
    bytes += alloc;
    if (e.st.isFile()) files.push({ size: Number(e.st.size), alloc });
  });
  return { bytes, entries, files };
}

/** sha256 of a host file read with O_NOATIME (root may use it on any file). */
export function hashHostFile(abs: Buffer): { sha256: string; bytes: number } {
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOATIME);
  try {
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(1 << 20);
    let total = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      total += n;
    }
    return { sha256: h.digest("hex"), bytes: total };
  } finally {
    fs.closeSync(fd);
  }
}

/** getfattr escapes backslash and non-printable bytes as \ooo. */
function unescapeGetfattr(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      out.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else out.push(s.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** All user.* xattrs under root: latin1 relative path -> (name -> value). One getfattr run. */
export function readHostXattrs(root: string): Map<string, Map<string, Buffer>> {
  ensureAttrTools();
  // getfattr exits 1 when it met files it could not read (FIFOs are fine); keep its output.
  const r = runSync("getfattr", ["-R", "-h", "-d", "-m", "^user\\.", "-e", "hex", "--absolute-names", root], { okCodes: [0, 1] });
  const out = new Map<string, Map<string, Buffer>>();
  const prefix = Buffer.from(root + "/");
  let cur: Map<string, Buffer> | undefined;
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      const p = unescapeGetfattr(line.slice(8));
      if (p.equals(Buffer.from(root))) { cur = undefined; continue; }
      if (!p.subarray(0, prefix.length).equals(prefix)) throw new Error(`getfattr path outside root: ${line}`);
      cur = new Map();
      out.set(p.subarray(prefix.length).toString("latin1"), cur);
    } else if (line && cur) {
      const eq = line.indexOf("=");
      const name = eq < 0 ? line : line.slice(0, eq);
      const val = eq < 0 ? "" : line.slice(eq + 1);
      if (val && !val.startsWith("0x")) throw new Error(`unexpected getfattr value encoding: ${line}`);
      cur.set(name, Buffer.from(val.slice(2), "hex"));
    }
  }
  return out;
}
