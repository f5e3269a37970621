// Helpers for tests/cli.test.ts: run the built CLI as a child process, build
// the source tree the test images are made from, and read a host tree back
// (raw-byte names, nanosecond times, xattrs) for comparison.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BIN = path.join(ROOT, "bin/ext4wasm.mjs");

export interface CliResult { status: number; stdout: Buffer; stderr: string }

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, EXT4WASM_DEBUG: "", ...env }, maxBuffer: 256 << 20, encoding: "buffer",
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

/** Runs a host tool; throws with its output when it fails. */
export function sh(cmd: string, args: string[], input?: string | Buffer): string {
  const r = spawnSync(cmd, args, { input, encoding: "latin1", maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export { ensureBuilt } from "./helpers/built-package.js";

export const joinBuf = (a: Buffer, b: Buffer): Buffer => (a.length ? Buffer.concat([a, Buffer.from("/"), b]) : b);

export interface HostEntry { rel: Buffer; abs: Buffer; st: fs.BigIntStats }

/** Every entry under root (root excluded), parents first, names sorted bytewise; lstat only, nothing read. */
export function walkHost(root: string): HostEntry[] {
  const out: HostEntry[] = [];
  const rec = (rel: Buffer, abs: Buffer) => {
    for (const n of fs.readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare)) {
      const e = { rel: joinBuf(rel, n), abs: joinBuf(abs, n), st: fs.lstatSync(joinBuf(abs, n), { bigint: true }) };
      out.push(e);
      if (e.st.isDirectory()) rec(e.rel, e.abs);
    }
  };
  rec(Buffer.alloc(0), Buffer.from(root));
  return out;
}

/** user.* xattrs of every entry under root: latin1 relative path -> name -> base64 value. */
export function hostXattrs(root: string): Map<string, Map<string, string>> {
  const abs = fs.realpathSync(root);
  const text = sh("getfattr", ["-R", "-h", "-d", "-m", "^user\\.", "-e", "base64", "--absolute-names", abs]);
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8)));
  const out = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("# file: ")) {
      const p = unescape(line.slice(8));
      cur = new Map();
      out.set(p === abs ? "" : p.slice(abs.length + 1), cur);
    } else if (cur && line.includes("=")) {
      const eq = line.indexOf("=");
      const v = line.slice(eq + 1);
      cur.set(unescape(line.slice(0, eq)), v.startsWith("0s") ? v.slice(2) : v === '""' ? "" : Buffer.from(v.replace(/^"|"$/g, ""), "latin1").toString("base64"));
    }
  }
  return out;
}

export const NS = 1_000_000_000n;
export const floorDiv = (a: bigint, b: bigint): bigint => (a % b < 0n ? a / b - 1n : a / b);
export const floorToSec = (ns: bigint): bigint => floorDiv(ns, NS) * NS;
export const floorToMicros = (ns: bigint): bigint => floorDiv(ns, 1000n) * 1000n;

/** Sets a file's atime/mtime to exact nanoseconds (GNU touch; node's utimes stops at microseconds). */
export function touchNs(p: string, atimeNs: bigint, mtimeNs: bigint): void {
  const text = (ns: bigint) => {
    const neg = ns < 0n;
    const a = neg ? -ns : ns;
    return `@${neg ? "-" : ""}${a / NS}.${(a % NS).toString().padStart(9, "0")}`;
  };
  sh("touch", ["-h", "-a", "-d", text(atimeNs), p]);
  sh("touch", ["-h", "-m", "-d", text(mtimeNs), p]);
}

/** debugfs commands that set a time field to exact ns (low 32 bits, then epoch bits + ns in *_extra). */
export function debugfsSetTime(imagePath: string, field: "atime" | "mtime", ns: bigint): string[] {
  const sec = floorDiv(ns, NS);
  const nsec = ns - sec * NS;
  const lo = BigInt.asUintN(32, sec);
  const epoch = (sec - BigInt.asIntN(32, sec)) >> 32n;
  const extra = (nsec << 2n) | (epoch & 3n);
  return [`sif ${imagePath} ${field} 0x${lo.toString(16)}`, `sif ${imagePath} ${field}_extra ${extra}`];
}

/** The "field: 0xLO:EXTRA" pair debugfs prints for an inode time. */
export function debugfsTime(image: string, imagePath: string, field: "atime" | "mtime"): { lo: number; extra: number } {
  const text = sh("debugfs", ["-R", `stat ${imagePath}`, image]);
  const m = new RegExp(`^\\s*${field}: 0x([0-9a-f]+):([0-9a-f]+)`, "m").exec(text);
  if (!m) throw new Error(`no ${field} in debugfs stat ${imagePath}:\n${text}`);
  return { lo: parseInt(m[1], 16), extra: parseInt(m[2], 16) };
}

/** dumpe2fs -h as label -> value. */
export function dumpe2fsHeader(image: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of sh("dumpe2fs", ["-h", image]).split("\n")) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) out.set(m[1].trim(), m[2].trim());
  }
  return out;
}

/** Deterministic bytes. */
export function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Writes `mib` MiB, each MiB the same pattern (every 4 KiB block starts with its
 * offset in the MiB + 1, so a misplaced block shows); returns that MiB.
 */
export function writePatternedFile(file: string, mib: number): Buffer {
  const chunk = Buffer.alloc(1 << 20);
  for (let j = 0; j < chunk.length; j += 4096) chunk.writeUInt32LE(j + 1, j);
  const fd = fs.openSync(file, "w");
  try {
    for (let i = 0; i < mib; i++) fs.writeSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
  return chunk;
}
