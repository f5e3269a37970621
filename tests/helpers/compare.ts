// Walks a host tree and a mounted volume side by side and asserts they hold the
// same thing: names as raw bytes, kinds, modes, owners, link counts, sizes,
// bytes, symlink targets, times (as the image can record them), hard-link
// identity and user.* xattrs. Mismatches are collected and asserted once, so a
// failing reader shows every difference rather than the first.

import { expect } from "vitest";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { hashHostFile, joinBuf, readHostXattrs, type TimeSnapshot } from "./hostfs.js";
import { EXACT_TIMES, expectedTimeNs, type TimePolicy } from "./times.js";

export { EXACT_TIMES, expectedTimeNs, type TimePolicy } from "./times.js";

type Num = number | bigint;
/** The part of the volume's BigIntStats the comparison reads. */
export interface VolumeStatsLike {
  mode: Num; uid: Num; gid: Num; nlink: Num; ino: Num; size: Num;
  atimeNs: bigint; mtimeNs: bigint;
  rdev?: Num;
  isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean;
  isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean;
}
/** The Volume API surface used here (host/index.js mount()). */
export interface VolumeLike {
  // Return types are as wide as node:fs-style overloads declare; strings are
  // reported as mismatches (buffer encoding was asked for).
  readdirSync(path: Buffer, options: { encoding: "buffer" }): (string | Uint8Array)[];
  lstatSync(path: Buffer, options: { bigint: true }): VolumeStatsLike;
  readFileSync(path: Buffer): string | Uint8Array;
  readlinkSync(path: Buffer, options: { encoding: "buffer" }): Uint8Array | string;
  listxattr(path: Buffer): string[];
  getxattr(path: Buffer, name: string): Uint8Array;
}

export interface CompareOptions {
  /** Default EXACT_TIMES; mkfs -d images pass their manifest's timePolicy. */
  timePolicy?: TimePolicy;
  /** Host times as the image builder saw them (reads since then moved atimes). */
  times?: TimeSnapshot;
  checkAtime?: boolean;
  checkMtime?: boolean;
  /** Compare the root directory's own metadata (mkfs -d makes its own root). Default false. */
  rootMeta?: boolean;
  /** Root names the volume may have and the host lack. Default ["lost+found"]. */
  volumeOnlyRootNames?: string[];
  /** Skip a host entry (latin1 relative path) and everything under it. */
  ignore?: (rel: string) => boolean;
  /** Stop collecting after this many mismatches. Default 200. */
  maxMismatches?: number;
}

export interface CompareCounts {
  files: number;
  dirs: number;
  symlinks: number;
  fifos: number;
  devices: number;
  /** File bytes compared. */
  bytes: number;
  xattrs: number;
  /** Names that share an inode with an earlier name. */
  hardlinks: number;
}

const kindOf = (s: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string =>
  s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "symlink" : s.isFIFO() ? "fifo" : s.isCharacterDevice() ? "chardev" : s.isBlockDevice() ? "blockdev" : "other";

const utf8 = new TextDecoder("utf-8", { fatal: true });
/** A path for messages: UTF-8 when it is, else latin1 with bytes >= 0x80 as \xHH. */
const show = (b: Uint8Array): string => {
  try {
    return JSON.stringify(utf8.decode(b));
  } catch {
    return `"${[...b].map((c) => (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`)).join("")}"`;
  }
};
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

export function compareVolumeWithTree(vol: VolumeLike, hostDir: string, opts: CompareOptions = {}): CompareCounts {
  const policy = opts.timePolicy ?? EXACT_TIMES;
  const max = opts.maxMismatches ?? 200;
  const volumeOnly = new Set(opts.volumeOnlyRootNames ?? ["lost+found"]);
  const hostX = readHostXattrs(hostDir);
  const counts: CompareCounts = { files: 0, dirs: 0, symlinks: 0, fifos: 0, devices: 0, bytes: 0, xattrs: 0, hardlinks: 0 };
  const problems: string[] = [];
  const bad = (where: string, what: string): void => { if (problems.length < max) problems.push(`${where}: ${what}`); };
  const same = (where: string, what: string, got: unknown, want: unknown): void => {
    if (got !== want) bad(where, `${what} is ${String(got)}, expected ${String(want)}`);
  };
  const hostToVolIno = new Map<bigint, bigint>();
  const volToHostIno = new Map<bigint, bigint>();

  const volPath = (rel: Buffer): Buffer => Buffer.concat([Buffer.from("/"), rel]);
  const attempt = <T>(where: string, what: string, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      bad(where, `${what} threw ${(e as Error).message}`);
      return undefined;
    }
  };

  const compareEntry = (rel: Buffer, abs: Buffer, h: fs.BigIntStats, isRoot: boolean): void => {
    const key = rel.toString("latin1");
    const where = isRoot ? "/" : show(rel);
    const vp = volPath(rel);
    const v = attempt(where, "lstat", () => vol.lstatSync(vp, { bigint: true }));
    if (!v) return;
    const kind = kindOf(h);
    same(where, "kind", kindOf(v), kind);
    if (kindOf(v) !== kind) return;

    if (!isRoot || opts.rootMeta) {
      same(where, "mode", Number(v.mode).toString(8), Number(h.mode).toString(8));
      same(where, "uid", Number(v.uid), Number(h.uid));
      same(where, "gid", Number(v.gid), Number(h.gid));
      same(where, "nlink", Number(v.nlink), Number(h.nlink));
      const t = opts.times?.get(key) ?? { atimeNs: h.atimeNs, mtimeNs: h.mtimeNs };
      if (opts.checkMtime ?? true) same(where, "mtimeNs", BigInt(v.mtimeNs), expectedTimeNs(t.mtimeNs, policy));
      if (opts.checkAtime ?? true) same(where, "atimeNs", BigInt(v.atimeNs), expectedTimeNs(t.atimeNs, policy));
    }
    if (kind !== "dir") {
      same(where, "size", Number(v.size), Number(h.size));
      const vIno = BigInt(v.ino);
      const seenVol = hostToVolIno.get(h.ino);
      const seenHost = volToHostIno.get(vIno);
      if (seenVol !== undefined || seenHost !== undefined) {
        counts.hardlinks++;
        if (seenVol !== vIno || seenHost !== h.ino) bad(where, `hard-link identity: host ino ${h.ino} -> volume ino ${vIno}, earlier ${seenVol ?? "-"} / ${seenHost ?? "-"}`);
      } else {
        hostToVolIno.set(h.ino, vIno);
        volToHostIno.set(vIno, h.ino);
      }
    }

    switch (kind) {
      case "file": {
        counts.files++;
        const want = hashHostFile(abs);
        const got = attempt(where, "readFileSync", () => vol.readFileSync(vp));
        if (typeof got === "string") bad(where, "readFileSync returned a string, not bytes");
        else if (got) {
          same(where, "content length", got.length, want.bytes);
          same(where, "sha256", sha(got), want.sha256);
          counts.bytes += got.length;
        }
        break;
      }
      case "symlink": {
        counts.symlinks++;
        const want = fs.readlinkSync(abs, { encoding: "buffer" });
        const got = attempt(where, "readlinkSync", () => vol.readlinkSync(vp, { encoding: "buffer" }));
        if (typeof got === "string") bad(where, "readlinkSync({ encoding: \"buffer\" }) returned a string");
        else if (got !== undefined) {
          const gotBuf = Buffer.from(got);
          if (!gotBuf.equals(want)) bad(where, `target ${show(gotBuf)}, expected ${show(want)}`);
        }
        break;
      }
      case "fifo":
        counts.fifos++;
        break;
      case "chardev":
      case "blockdev":
        counts.devices++;
        if (v.rdev !== undefined) same(where, "rdev", Number(v.rdev), Number(h.rdev));
        break;
      case "dir":
        counts.dirs++;
        break;
    }

    // user.* xattrs exist only on files and dirs; listxattr would follow a symlink.
    if (kind === "file" || kind === "dir") {
      const want = hostX.get(key) ?? new Map<string, Buffer>();
      const names = attempt(where, "listxattr", () => vol.listxattr(vp).filter((n) => n.startsWith("user.")).sort());
      if (names) {
        same(where, "user.* xattr names", JSON.stringify(names), JSON.stringify([...want.keys()].sort()));
        for (const [name, value] of want) {
          if (!names.includes(name)) continue;
          const got = attempt(where, `getxattr ${name}`, () => vol.getxattr(vp, name));
          if (got && !Buffer.from(got).equals(value)) bad(where, `xattr ${name}: ${got.length} bytes differ from the host's ${value.length}`);
          counts.xattrs++;
        }
      }
    }

    if (kind === "dir") compareDir(rel, abs, isRoot);
  };

  const compareDir = (rel: Buffer, abs: Buffer, isRoot: boolean): void => {
    const where = isRoot ? "/" : show(rel);
    const hostNames = fs.readdirSync(abs, { encoding: "buffer" })
      .filter((n) => !opts.ignore?.((rel.length ? joinBuf(rel, n) : n).toString("latin1")))
      .sort(Buffer.compare);
    // lstat every child before reading any of them (reads move host atimes).
    const kids = hostNames.map((n) => {
      const a = joinBuf(abs, n);
      return { name: n, abs: a, st: fs.lstatSync(a, { bigint: true }) };
    });
    const volRaw = attempt(where, "readdirSync", () => vol.readdirSync(volPath(rel), { encoding: "buffer" }));
    if (!volRaw) return;
    if (volRaw.some((n) => typeof n === "string")) {
      bad(where, "readdirSync({ encoding: \"buffer\" }) returned strings");
      return;
    }
    const hostSet = new Set(hostNames.map((n) => n.toString("latin1")));
    const volNames = (volRaw as Uint8Array[]).map((n) => Buffer.from(n))
      .filter((n) => !(n.equals(Buffer.from(".")) || n.equals(Buffer.from(".."))))
      .filter((n) => !(isRoot && volumeOnly.has(n.toString("latin1")) && !hostSet.has(n.toString("latin1"))))
      .filter((n) => !opts.ignore?.((rel.length ? joinBuf(rel, n) : n).toString("latin1")))
      .sort(Buffer.compare);
    const volSet = new Set(volNames.map((n) => n.toString("latin1")));
    const missing = hostNames.filter((n) => !volSet.has(n.toString("latin1")));
    const extra = volNames.filter((n) => !hostSet.has(n.toString("latin1")));
    if (missing.length) bad(where, `missing from the volume: ${missing.slice(0, 10).map(show).join(", ")}${missing.length > 10 ? ` (+${missing.length - 10})` : ""}`);
    if (extra.length) bad(where, `only in the volume: ${extra.slice(0, 10).map(show).join(", ")}${extra.length > 10 ? ` (+${extra.length - 10})` : ""}`);
    for (const k of kids) {
      if (!volSet.has(k.name.toString("latin1"))) continue;
      compareEntry(rel.length ? joinBuf(rel, k.name) : k.name, k.abs, k.st, false);
    }
  };

  const rootAbs = Buffer.from(hostDir);
  compareEntry(Buffer.alloc(0), rootAbs, fs.lstatSync(rootAbs, { bigint: true }), true);
  // The list goes in the message: vitest abbreviates long arrays in diffs.
  const head = `${problems.length}${problems.length >= max ? "+" : ""} mismatch(es) between the volume and ${hostDir}`;
  expect(problems.length, `${head}:\n  ${problems.join("\n  ")}\n`).toBe(0);
  return counts;
}

/**
 * A VolumeLike over a host directory, e.g. the kernel's own loop mount of an
 * image: lets the comparison (and an image's manifest) be checked without the
 * engine. xattrs are read once up front.
 */
export function hostDirVolume(root: string): VolumeLike {
  const abs = (p: Buffer): Buffer => Buffer.concat([Buffer.from(root), p.length === 1 ? Buffer.alloc(0) : p]);
  const xattrs = readHostXattrs(root);
  const keyOf = (p: Buffer): string => p.subarray(1).toString("latin1");
  return {
    readdirSync: (p) => fs.readdirSync(abs(p), { encoding: "buffer" }),
    lstatSync: (p) => fs.lstatSync(abs(p), { bigint: true }),
    readFileSync: (p) => fs.readFileSync(abs(p)),
    readlinkSync: (p) => fs.readlinkSync(abs(p), { encoding: "buffer" }),
    listxattr: (p) => [...(xattrs.get(keyOf(p))?.keys() ?? [])],
    getxattr: (p, name) => {
      const v = xattrs.get(keyOf(p))?.get(name);
      if (!v) throw new Error(`ENODATA: ${name}`);
      return v;
    },
  };
}
