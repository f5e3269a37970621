// The kernel's side of a robustness walk: mount a (damaged) image through a
// loop device ro,noload,errors=continue and read every file the way
// robust-walk.ts does (whole files up to readWholeMax, else the same three
// samples), recording per path the data digest or the errno. compareWithKernel
// then holds our walk to the rule: where the kernel reads a file we read the
// same bytes or fail with a typed error, and we never return bytes for a file
// the kernel refuses (or cannot reach, or whose filesystem it will not mount).

import * as fs from "node:fs";
import * as path from "node:path";
import { withLoopMountSync } from "./kernel.js";
import { dataDigest, DEFAULT_LIMITS, sampleOffsets, type WalkResult } from "./robust-walk.js";

export interface KernelWalk {
  mounted: boolean;
  mountError?: string;
  /** Per path (latin1, "/a/b"), the data digest or "!ERRNO". Directories that failed to list are keyed with a trailing "/". */
  files: Record<string, string>;
}

/** Node has no name for EUCLEAN (117, the kernel's EFSCORRUPTED); EBADMSG is EFSBADCRC. */
const errnoName = (e: unknown): string => {
  const x = e as NodeJS.ErrnoException;
  return x.errno === -117 ? "EUCLEAN" : x.code ?? `errno${x.errno}`;
};

export function kernelWalk(imageFile: string, maxEntries = 5000): KernelWalk {
  const out: KernelWalk = { mounted: false, files: {} };
  try {
    withLoopMountSync(imageFile, (mnt) => {
      out.mounted = true;
      const root = Buffer.from(mnt);
      let seen = 0;
      const visited = new Set<bigint>();
      const visit = (rel: Buffer): void => {
        if (++seen > maxEntries) return;
        const abs = Buffer.concat([root, rel]);
        const key = rel.length ? rel.toString("latin1") : "/";
        let st: fs.BigIntStats;
        try { st = fs.lstatSync(abs, { bigint: true }); } catch (e) { out.files[key] = `!${errnoName(e)}`; return; }
        if (st.isFile()) {
          out.files[key] = readFileDigest(abs, Number(st.size));
        } else if (st.isDirectory()) {
          if (visited.has(st.ino)) return;
          visited.add(st.ino);
          let names: Buffer[];
          try { names = fs.readdirSync(abs, { encoding: "buffer" }); } catch (e) { out.files[`${key === "/" ? "" : key}/`] = `!${errnoName(e)}`; return; }
          for (const n of names.sort(Buffer.compare)) visit(Buffer.concat([rel, Buffer.from("/"), n]));
        }
      };
      visit(Buffer.alloc(0));
    }, { readOnly: true, options: "noload,errors=continue" });
  } catch (e) {
    if (!out.mounted) out.mountError = (e as Error).message.split("\n").find((l) => /mount|wrong fs|bad superblock|Structure/.test(l)) ?? "mount failed";
    else throw e;
  }
  return out;
}

function readFileDigest(abs: Buffer, size: number): string {
  try {
    if (size <= DEFAULT_LIMITS.readWholeMax) return dataDigest(fs.readFileSync(abs));
    const fd = fs.openSync(abs, "r");
    try {
      const parts = sampleOffsets(size).map((at) => {
        const buf = Buffer.alloc(65536);
        const n = fs.readSync(fd, buf, 0, buf.length, at);
        return buf.subarray(0, n);
      });
      return dataDigest(Buffer.concat(parts));
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    return `!${errnoName(e)}`;
  }
}

export interface KernelComparison {
  /** Both read the file and got different bytes: always wrong. */
  differ: string[];
  /** We returned bytes where the kernel refused, could not reach the file, or would not mount. */
  oursOnly: string[];
  /** Files both read alike. */
  agree: number;
}

export function compareWithKernel(ours: WalkResult, k: KernelWalk): KernelComparison {
  const c: KernelComparison = { differ: [], oursOnly: [], agree: 0 };
  const mine = ours.fileOutcomes ?? {};
  for (const [p, o] of Object.entries(mine)) {
    if (o.startsWith("!")) continue;
    const theirs = k.mounted ? k.files[p] : `!mount: ${k.mountError}`;
    if (theirs === undefined) c.oursOnly.push(`${JSON.stringify(p)}: read ${o}, the kernel did not reach it${parentFailure(k, p)}`);
    else if (theirs.startsWith("!")) c.oursOnly.push(`${JSON.stringify(p)}: read ${o}, the kernel said ${theirs.slice(1)}`);
    else if (theirs !== o) c.differ.push(`${JSON.stringify(p)}: ours ${o}, the kernel's ${theirs}`);
    else c.agree++;
  }
  return c;
}

function parentFailure(k: KernelWalk, p: string): string {
  for (let d = path.posix.dirname(p); ; d = path.posix.dirname(d)) {
    const key = d === "/" ? "/" : `${d}/`;
    if (k.files[key]?.startsWith("!")) return ` (listing ${d} failed: ${k.files[key].slice(1)})`;
    if (k.files[d]?.startsWith("!")) return ` (lstat ${d} failed: ${k.files[d].slice(1)})`;
    if (d === "/") return "";
  }
}
