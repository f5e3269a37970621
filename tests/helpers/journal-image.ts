// Test helpers for journal recovery: build ext4 images whose journal needs
// recovery (with the kernel over a loop device, or with debugfs's journal
// writer), read their journal through debugfs's view of inode 8, and get the
// expected outcome from the real tools (debugfs journal_run, e2fsck, logdump).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as J from "../../host/format/jbd2.js";
import type { JournalLog } from "../../host/journal/recovery.js";
import { synthJournal, type SynthJournal, type SynthTxn } from "./journal-synth.js";

export function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Why kernel (loop mount) cases cannot run here, or null if they can. */
export function loopUnavailableReason(): string | null {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "not root";
  if (!fs.existsSync("/dev/loop-control")) return "/dev/loop-control is missing";
  return null;
}

export function blockSizeOf(image: string): number {
  const m = /^Block size:\s+(\d+)/m.exec(sh("dumpe2fs", ["-h", image]));
  if (!m) throw new Error(`no block size in dumpe2fs -h ${image}`);
  return Number(m[1]);
}

/** Physical blocks of the journal inode, in logical order. */
export function journalBlocks(image: string): number[] {
  const out = sh("debugfs", ["-R", "blocks <8>", image]);
  return out.split(/\s+/).filter(Boolean).map(Number);
}

export function readBlock(image: string, block: number, bs: number): Buffer {
  const fd = fs.openSync(image, "r");
  try {
    const b = Buffer.alloc(bs);
    fs.readSync(fd, b, 0, bs, block * bs);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** A JournalLog over an image file, reading the journal blocks debugfs reports. */
export function imageJournalLog(image: string): { log: JournalLog; bs: number; phys: number[]; close(): void } {
  const bs = blockSizeOf(image);
  const phys = journalBlocks(image);
  const fd = fs.openSync(image, "r");
  const log: JournalLog = {
    blockSize: bs,
    length: phys.length,
    readBlock(j: number): Uint8Array {
      const b = new Uint8Array(bs);
      fs.readSync(fd, b, 0, bs, phys[j] * bs);
      return b;
    },
  };
  return { log, bs, phys, close: () => fs.closeSync(fd) };
}

/** The whole journal in memory (for mutation tests). */
export function snapshotJournal(image: string): { blocks: Uint8Array[]; bs: number } {
  const j = imageJournalLog(image);
  try {
    const blocks: Uint8Array[] = [];
    for (let i = 0; i < j.log.length; i++) blocks.push(j.log.readBlock(i));
    return { blocks, bs: j.bs };
  } finally {
    j.close();
  }
}

export interface Logdump {
  startBlock: number;
  startTid: number;
  /** tids whose commit block logdump found. */
  committed: Set<number>;
  /** Journal positions of header blocks in log order (to see whether the log wraps). */
  headerPositions: number[];
  logs: Array<{ tid: number; block: number }>;
  revokes: Array<{ tid: number; block: number }>;
}

/** debugfs logdump -a, parsed: it walks the log without checking checksums. */
export function logdump(image: string): Logdump {
  const out = sh("debugfs", ["-R", "logdump -a", image]);
  const start = /Journal starts at block (\d+), transaction (\d+)/.exec(out);
  if (!start) throw new Error(`unexpected logdump output:\n${out.slice(0, 500)}`);
  const res: Logdump = {
    startBlock: Number(start[1]), startTid: Number(start[2]), committed: new Set(), headerPositions: [],
    logs: [], revokes: [],
  };
  let tid = -1;
  for (const line of out.split("\n")) {
    let m = /^Found expected sequence (\d+), type (\d+) .* at block (\d+)/.exec(line);
    if (m) {
      res.headerPositions.push(Number(m[3]));
      if (m[2] === "2") res.committed.add(Number(m[1]));
      continue;
    }
    if ((m = /^Dumping (?:descriptor|revoke) block, sequence (\d+)/.exec(line))) tid = Number(m[1]);
    else if ((m = /^ {2}FS block (\d+) logged at/.exec(line))) res.logs.push({ tid, block: Number(m[1]) });
    else if ((m = /^ {2}Revoke FS block (\d+)/.exec(line))) res.revokes.push({ tid, block: Number(m[1]) });
  }
  return res;
}

export function copySparse(src: string, dst: string): void {
  sh("cp", ["--sparse=always", src, dst]);
}

/** A copy recovered by debugfs journal_run: the replay alone, no fsck passes. */
export function replayWithDebugfs(src: string, dst: string): void {
  copySparse(src, dst);
  const r = spawnSync("debugfs", ["-w", "-R", "journal_run", dst], { encoding: "utf8" });
  if (r.status !== 0 || /while recovering journal/.test(r.stderr)) throw new Error(`debugfs journal_run failed: ${r.stderr}`);
}

/** A copy recovered and checked by e2fsck -fy; returns its output. */
export function replayWithE2fsck(src: string, dst: string): string {
  copySparse(src, dst);
  const r = spawnSync("e2fsck", ["-fy", dst], { encoding: "utf8" });
  // 0 clean, 1 errors corrected; anything else means e2fsck could not finish.
  if (r.status !== 0 && r.status !== 1) throw new Error(`e2fsck -fy exited ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Superblock, group descriptor, reserved GDT and bitmap blocks: what e2fsck's count fixes touch. */
export function summaryMetadataBlocks(image: string): Set<number> {
  const out = sh("dumpe2fs", [image]);
  const s = new Set<number>();
  const addRange = (a: string, b?: string) => { for (let x = Number(a); x <= Number(b ?? a); x++) s.add(x); };
  for (const m of out.matchAll(/superblock at (\d+)/gi)) addRange(m[1]);
  for (const m of out.matchAll(/(?:Group descriptors|Reserved GDT blocks) at (\d+)-(\d+)/g)) addRange(m[1], m[2]);
  for (const m of out.matchAll(/(?:Block|Inode) bitmap at (\d+)/g)) addRange(m[1]);
  return s;
}

/** Blocks whose contents differ between two images of the same size. */
export function differingBlocks(a: string, b: string, bs: number): Set<number> {
  const A = fs.readFileSync(a);
  const B = fs.readFileSync(b);
  if (A.length !== B.length) throw new Error(`${a} and ${b} differ in size`);
  const out = new Set<number>();
  for (let off = 0; off < A.length; off += bs) {
    if (A.compare(B, off, off + bs, off, off + bs) !== 0) out.add(off / bs);
  }
  return out;
}

export function mkfs(image: string, sizeMiB: number, args: string[]): void {
  fs.writeFileSync(image, "");
  fs.truncateSync(image, sizeMiB << 20);
  sh("mkfs.ext4", ["-q", "-F", ...args, image]);
}

/** Free block ranges of a fresh filesystem (from dumpe2fs). */
export function freeRanges(image: string): Array<[number, number]> {
  const out = sh("dumpe2fs", [image]);
  const r: Array<[number, number]> = [];
  for (const m of out.matchAll(/^ {2}Free blocks: (.*)$/gm)) {
    for (const part of m[1].split(",").map((x) => x.trim()).filter(Boolean)) {
      const [a, b] = part.split("-");
      r.push([Number(a), Number(b ?? a)]);
    }
  }
  return r;
}

/** Runs debugfs -w with a command script (journal_open/write/close etc.). */
export function debugfsScript(image: string, commands: string[]): string {
  const r = spawnSync("debugfs", ["-w", "-f", "-", image], { encoding: "utf8", input: commands.join("\n") + "\n" });
  if (r.status !== 0) throw new Error(`debugfs script failed: ${r.stderr}`);
  // debugfs reports command failures on stderr but still exits 0.
  const errs = r.stderr.split("\n").filter((l) => l && !/^debugfs \d/.test(l));
  if (errs.length) throw new Error(`debugfs script errors:\n${errs.join("\n")}`);
  return r.stdout;
}

/** A small deterministic PRNG (xorshift32). */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

export function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}

/**
 * Mounts `image` through a loop device and runs `work(mountDir)`, which takes
 * its crash snapshots with copySparse while the filesystem is still mounted.
 * Unmounts and detaches whatever happens.
 */
export function withLoopMount<T>(image: string, mountOpts: string, work: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(path.dirname(image), "mnt-"));
  let loop: string | undefined;
  let mounted = false;
  try {
    loop = sh("losetup", ["--find", "--show", image]).trim();
    sh("mount", ["-t", "ext4", "-o", mountOpts, loop, dir]);
    mounted = true;
    return work(dir);
  } finally {
    if (mounted) {
      const u = spawnSync("umount", [dir]);
      if (u.status !== 0) spawnSync("umount", ["-l", dir]);
    }
    if (loop) spawnSync("losetup", ["-d", loop]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** fsync of one file: makes jbd2 commit the running transaction without writing metadata home. */
export function fsyncFile(file: string): void {
  const fd = fs.openSync(file, "r");
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Writes `data` at fs block `block` of an image file. */
export function writeBlock(image: string, block: number, data: Uint8Array): void {
  const fd = fs.openSync(image, "r+");
  try { fs.writeSync(fd, data, 0, data.length, block * data.length); } finally { fs.closeSync(fd); }
}

export interface CraftedImage {
  image: string;
  bs: number;
  /** Physical blocks of the journal inode. */
  phys: number[];
  synth: SynthJournal;
  /** The fs blocks the log names, in the order the txns callback was given them. */
  free: number[];
}

/**
 * A fresh filesystem whose journal holds a hand-built log (synthJournal over
 * the journal inode's own blocks, with its UUID) and needs recovery: s_start
 * set in the journal superblock, needs_recovery in the filesystem's. The log
 * names free blocks only, so a replay touches nothing the filesystem uses.
 * `damage` runs on the log before it is written.
 */
export function craftJournalImage(o: {
  image: string; sizeMiB: number; mkfs: string[]; incompat: number; compat?: number; sequence: number;
  txns: (free: number[]) => SynthTxn[]; damage?: (s: SynthJournal) => void;
}): CraftedImage {
  mkfs(o.image, o.sizeMiB, o.mkfs);
  const bs = blockSizeOf(o.image);
  const phys = journalBlocks(o.image);
  const [lo, hi] = freeRanges(o.image).reduce((a, r) => (r[1] - r[0] > a[1] - a[0] ? r : a));
  const free = Array.from({ length: Math.min(64, hi - lo - 16) }, (_, i) => lo + 8 + i);
  const jsb = new Uint8Array(readBlock(o.image, phys[0], bs));
  const synth = synthJournal({
    bs, length: phys.length, incompat: o.incompat, compat: o.compat, sequence: o.sequence,
    uuid: jsb.slice(0x30, 0x40), txns: o.txns(free),
  });
  o.damage?.(synth);
  // The real superblock, with the log's start and the features the log was written with.
  J.setBe32(jsb, 0x18, o.sequence >>> 0);
  J.setBe32(jsb, 0x1c, 1);
  J.setBe32(jsb, 0x24, o.compat ?? 0);
  J.setBe32(jsb, 0x28, o.incompat);
  jsb[0x50] = J.hasCsumV2or3(o.incompat) ? J.CHKSUM_TYPE.CRC32C : 0;
  if (J.hasCsumV2or3(o.incompat)) J.setJournalSuperblockChecksum(jsb);
  const fd = fs.openSync(o.image, "r+");
  try {
    fs.writeSync(fd, jsb, 0, bs, phys[0] * bs);
    for (let j = 1; j < phys.length; j++) fs.writeSync(fd, synth.blocks[j], 0, bs, phys[j] * bs);
  } finally {
    fs.closeSync(fd);
  }
  debugfsScript(o.image, ["feature needs_recovery"]);
  return { image: o.image, bs, phys, synth, free };
}

/**
 * The kernel's verdict on an image: loop-mount it read-write, unmount at once.
 * Returns whether the mount succeeded and mount's message; always detaches.
 */
export function kernelMountVerdict(image: string): { mounted: boolean; message: string } {
  const dir = fs.mkdtempSync(path.join(path.dirname(image), "kmnt-"));
  let loop: string | undefined;
  try {
    loop = sh("losetup", ["--find", "--show", image]).trim();
    const m = spawnSync("mount", ["-t", "ext4", loop, dir], { encoding: "utf8" });
    if (m.status === 0) {
      const u = spawnSync("umount", [dir]);
      if (u.status !== 0) spawnSync("umount", ["-l", dir]);
      return { mounted: true, message: "" };
    }
    return { mounted: false, message: (m.stderr || m.stdout).trim() };
  } finally {
    if (loop) spawnSync("losetup", ["-d", loop]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
