// Images written by the Linux kernel itself, through a loop mount: the layouts
// mkfs -d never makes (delayed allocation, fallocate, punched holes, churned
// directories, kernel-built htrees) and a crashed copy whose journal must be
// replayed. Needs root and /dev/loop-control; loopMountSupport() says why not.

import * as fs from "node:fs";
import * as path from "node:path";
import { runSync } from "./exec.js";
import { mkfsEnv, seededUuid } from "./images.js";
import { diskUsage, snapshotTimes, type TimeSnapshot } from "./hostfs.js";

export type LoopSupport = { ok: true } | { ok: false; reason: string };

let support: LoopSupport | undefined;

/** Root, loop devices and a trial mount of a tiny ext4 image. Cached per process. */
export function loopMountSupport(): LoopSupport {
  if (support) return support;
  support = probe();
  return support;
}

function probe(): LoopSupport {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not running as root" };
  if (!fs.existsSync("/dev/loop-control")) return { ok: false, reason: "/dev/loop-control is missing" };
  const dir = fs.mkdtempSync(path.join(fs.realpathSync("/tmp"), "ext4wasm-loopprobe-"));
  try {
    const img = path.join(dir, "probe.img");
    runSync("mkfs.ext4", ["-q", "-F", img, "8M"], { env: mkfsEnv(dir) });
    let wrote = "";
    withLoopMountSync(img, (mnt) => {
      fs.writeFileSync(path.join(mnt, "x"), "ok");
      wrote = fs.readFileSync(path.join(mnt, "x"), "utf8");
    });
    return wrote === "ok" ? { ok: true } : { ok: false, reason: "trial mount did not round-trip a file" };
  } catch (e) {
    return { ok: false, reason: `trial loop mount failed: ${(e as Error).message.split("\n").slice(0, 6).join(" | ")}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface LoopMountOptions {
  readOnly?: boolean;
  /** Extra mount options, comma-separated (e.g. "noatime,commit=60"). */
  options?: string;
}

function attach(image: string, o: LoopMountOptions): { dev: string; mnt: string } {
  // losetup --find --show: we know which device to detach, even if mount fails.
  const dev = runSync("losetup", ["--find", "--show", ...(o.readOnly ? ["--read-only"] : []), image]).stdout.trim();
  const mnt = fs.mkdtempSync(path.join(path.dirname(path.resolve(image)), "mnt-"));
  const opts = [o.readOnly ? "ro" : "rw", ...(o.options ? [o.options] : [])].join(",");
  try {
    runSync("mount", ["-t", "ext4", "-o", opts, dev, mnt]);
  } catch (e) {
    detach(dev, mnt, false);
    throw e;
  }
  return { dev, mnt };
}

function detach(dev: string, mnt: string, mounted: boolean): void {
  const errors: string[] = [];
  if (mounted) {
    for (let i = 0; ; i++) {
      try {
        runSync("umount", [mnt]);
        break;
      } catch (e) {
        if (i >= 20) { errors.push((e as Error).message); break; }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // busy: retry shortly
      }
    }
  }
  try { runSync("losetup", ["-d", dev]); } catch (e) { errors.push((e as Error).message); }
  try { fs.rmdirSync(mnt); } catch { /* left behind only if still mounted */ }
  if (errors.length) throw new Error(`cleanup of ${dev} at ${mnt} failed:\n${errors.join("\n")}`);
}

/** Mounts image via a loop device, runs fn(mountpoint), always unmounts and detaches. */
export async function withLoopMount<T>(image: string, fn: (mnt: string) => T | Promise<T>, o: LoopMountOptions = {}): Promise<T> {
  const { dev, mnt } = attach(image, o);
  try {
    return await fn(mnt);
  } finally {
    detach(dev, mnt, true);
  }
}

/** Synchronous form, for the probe and other sync callers. */
export function withLoopMountSync<T>(image: string, fn: (mnt: string) => T, o: LoopMountOptions = {}): T {
  const { dev, mnt } = attach(image, o);
  try {
    return fn(mnt);
  } finally {
    detach(dev, mnt, true);
  }
}

export interface KernelImageOptions {
  blockSize?: number;
  /** Passed as mkfs.ext4 -O (e.g. "^metadata_csum" or "inline_data"). */
  features?: string;
  /** Extra mkfs.ext4 arguments, e.g. ["-I", "128"]. */
  mkfsArgs?: string[];
  /** Name used for the image and truth directory. Default "kernel". */
  name?: string;
}

/** Kernel-written configurations; `name` names the image and its truth dir. */
export const KERNEL_VARIANTS: (KernelImageOptions & { name: string })[] = [
  { name: "kernel-4k" },
  // ea_inode: the tree's 3 KiB xattr value cannot fit a 1k block otherwise.
  { name: "kernel-1k", blockSize: 1024, features: "ea_inode" },
  { name: "kernel-inline", features: "inline_data" },
  { name: "kernel-inode128", mkfsArgs: ["-I", "128"] },
  { name: "kernel-bigalloc", features: "bigalloc", mkfsArgs: ["-C", "16384"] },
  { name: "kernel-nocsum", features: "^metadata_csum,uninit_bg" },
];

/** Crashed-copy configurations (journal block size follows the fs block size). */
export const CRASH_VARIANTS: (KernelImageOptions & { name: string })[] = [
  { name: "crashed-4k" },
  { name: "crashed-1k", blockSize: 1024, features: "ea_inode" },
];

/** Tree limits for a kernel image: the kernel refuses symlink targets >= block size. */
export function kernelTreeOptions(o: KernelImageOptions): { maxSymlinkTarget: number; bigXattrSize: number } {
  return { maxSymlinkTarget: (o.blockSize ?? 4096) >= 4096 ? 4000 : 1023, bigXattrSize: 3000 };
}

export interface KernelImage {
  image: string;
  /** The volume's content as the kernel shows it after a clean remount, copied out with cp -a. */
  truthDir: string;
  /** Times of truthDir right after the copy (compare reads move its atimes). */
  times: TimeSnapshot;
  /** Paths (relative) the kernel made beyond the tree copy. */
  extras: string[];
}

export interface CrashedImage extends KernelImage {
  /** The original image, unmounted cleanly after the copy was taken. */
  original: string;
  /** Paths changed only after the last full sync: present in the crashed copy only via its journal. */
  journalOnly: string[];
}

// noatime: copies out must not move the image's atimes. noinit_itable + no lazy
// init at mkfs: no background writer races the crash copy.
const MOUNT_OPTS = "noatime,noinit_itable";

function makeEmptyImage(workDir: string, treeDir: string, o: KernelImageOptions, file: string): void {
  const bs = o.blockSize ?? 4096;
  const du = diskUsage(treeDir);
  const size = Math.ceil((3 * du.bytes + du.entries * Math.min(bs, 4096) * 2 + (128 << 20)) / (1 << 20)) * (1 << 20);
  const args = ["-q", "-F", "-b", String(bs), ...(o.features ? ["-O", o.features] : []), ...(o.mkfsArgs ?? []),
    "-U", seededUuid(file, "uuid"), "-E", `lazy_itable_init=0,lazy_journal_init=0,hash_seed=${seededUuid(file, "hash")}`, file, `${size >> 10}k`];
  fs.rmSync(file, { force: true });
  runSync("mkfs.ext4", args, { env: mkfsEnv(workDir) });
}

const sh = (script: string, cwd: string): void => { runSync("bash", ["-e", "-c", script], { cwd }); };

/** Writes that only the kernel's allocator produces; returns the paths made. */
function kernelExtras(mnt: string, blockSize: number): string[] {
  const d = path.join(mnt, "kernel-extras");
  fs.mkdirSync(d);
  sh(`
    fallocate -l 3M fallocated                         # unwritten extents inside i_size
    head -c 10000 /dev/urandom > beyond-eof
    fallocate -n -o 10000 -l 2M beyond-eof             # unwritten extents past EOF
    head -c 1048576 /dev/urandom > punched
    fallocate -p -o 0 -l 8192 punched                  # hole at the start
    fallocate -p -o 65536 -l 131072 punched            # hole in the middle
    fallocate -p -o 1040384 -l 8192 punched            # hole at the end (size stays)
    fallocate -l 1M zero-range && head -c 4096 /dev/urandom | dd of=zero-range bs=4096 seek=100 conv=notrunc status=none
  `, d);
  // Two files appended in turn with fsyncs between: interleaved, many extents.
  const a = fs.openSync(path.join(d, "append-a"), "a");
  const b = fs.openSync(path.join(d, "append-b"), "a");
  for (let i = 0; i < 150; i++) {
    for (const fd of [a, b]) {
      fs.writeSync(fd, Buffer.alloc(100 + ((i * 37) % 4000), 0x41 + (i % 26)));
      if (i % 3 === 0) fs.fsyncSync(fd);
    }
  }
  fs.closeSync(a);
  fs.closeSync(b);
  // Directory churn: deleted entries leave gaps and merged records.
  fs.mkdirSync(path.join(d, "churn"));
  for (let i = 0; i < 600; i++) fs.writeFileSync(path.join(d, "churn", `file-${i}-${"y".repeat(i % 50)}`), String(i));
  for (let i = 0; i < 600; i += 2) fs.unlinkSync(path.join(d, "churn", `file-${i}-${"y".repeat(i % 50)}`));
  for (let i = 1; i < 600; i += 10) fs.renameSync(path.join(d, "churn", `file-${i}-${"y".repeat(i % 50)}`), path.join(d, "churn", `renamed-${i}`));
  fs.writeFileSync(path.join(d, "inline-sized"), "tiny");
  // A slow symlink target must fit one block.
  fs.symlinkSync("x".repeat(Math.min(3000, blockSize - 1)), path.join(d, "slow-link"));
  return ["fallocated", "beyond-eof", "punched", "zero-range", "append-a", "append-b", "churn", "inline-sized", "slow-link"].map((n) => `kernel-extras/${n}`);
}

/** Copies a mounted volume's content out (read-only remount done by the caller). */
function copyOut(mnt: string, truthDir: string): TimeSnapshot {
  fs.rmSync(truthDir, { recursive: true, force: true });
  fs.mkdirSync(truthDir);
  runSync("cp", ["-a", "--", mnt + "/.", truthDir]);
  return snapshotTimes(truthDir);
}

/** mkfs an empty image, let the kernel fill it (tree copy + extras), unmount; truth from a clean ro remount. */
export async function kernelWrittenImage(workDir: string, treeDir: string, o: KernelImageOptions = {}): Promise<KernelImage> {
  fs.mkdirSync(workDir, { recursive: true });
  const name = o.name ?? "kernel";
  const image = path.join(workDir, `${name}.img`);
  const truthDir = path.join(workDir, `${name}.truth`);
  makeEmptyImage(workDir, treeDir, o, image);
  const extras = await withLoopMount(image, (mnt) => {
    runSync("cp", ["-a", "--", treeDir + "/.", mnt]);
    return kernelExtras(mnt, o.blockSize ?? 4096);
  }, { options: MOUNT_OPTS });
  // Re-read from disk so the truth is what the image holds, not cached inodes
  // (with 128-byte inodes the cache would still have nanoseconds).
  const times = await withLoopMount(image, (mnt) => copyOut(mnt, truthDir), { readOnly: true, options: "noatime" });
  return { image, truthDir, times, extras };
}

/**
 * Like kernelWrittenImage, but the image file is copied while still mounted:
 * after a full `sync`, more changes are made and only fsync'ed (journal
 * commit, home blocks not yet written back), then the copy is taken. The copy
 * needs journal recovery; the truth comes from the original after a clean
 * unmount, which holds exactly what replaying the copy must give.
 */
export async function crashedImageCopy(workDir: string, treeDir: string, o: KernelImageOptions = {}): Promise<CrashedImage> {
  fs.mkdirSync(workDir, { recursive: true });
  const name = o.name ?? "crashed";
  const original = path.join(workDir, `${name}.orig.img`);
  const image = path.join(workDir, `${name}.img`);
  const truthDir = path.join(workDir, `${name}.truth`);
  makeEmptyImage(workDir, treeDir, o, original);
  let extras: string[] = [];
  const journalOnly = ["post-sync", "post-sync/new-file", "post-sync/new-dir/inner", "files/size-200", "kernel-extras/append-a", "renamed-large-1m"];
  await withLoopMount(original, (mnt) => {
    runSync("cp", ["-a", "--", treeDir + "/.", mnt]);
    extras = kernelExtras(mnt, o.blockSize ?? 4096);
    // syncfs of this filesystem only: a global sync would wait on every other mount on the machine.
    runSync("sync", ["-f", mnt]);
    // After the sync: metadata reaches the journal (fsync commits) but not its home blocks.
    const p = (...s: string[]) => path.join(mnt, ...s);
    fs.mkdirSync(p("post-sync"));
    fs.mkdirSync(p("post-sync", "new-dir"));
    fs.writeFileSync(p("post-sync", "new-file"), Buffer.alloc(20000, 0x5a));
    fs.writeFileSync(p("post-sync", "new-dir", "inner"), "inner");
    fs.appendFileSync(p("kernel-extras", "append-a"), Buffer.alloc(5000, 0x42));
    if (fs.existsSync(p("files", "size-200"))) fs.truncateSync(p("files", "size-200"), 50);
    if (fs.existsSync(p("files", "large-1m"))) fs.renameSync(p("files", "large-1m"), p("renamed-large-1m"));
    if (fs.existsSync(p("meddir", "f1"))) fs.unlinkSync(p("meddir", "f1"));
    for (const f of [p("post-sync", "new-file"), p("post-sync", "new-dir", "inner"), p("kernel-extras", "append-a"), p("post-sync", "new-dir"), p("post-sync"), mnt]) {
      const fd = fs.openSync(f, "r");
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    fs.rmSync(image, { force: true });
    runSync("cp", ["--sparse=always", original, image]);
  }, { options: `${MOUNT_OPTS},commit=60` });
  const sb = runSync("dumpe2fs", ["-h", image], { okCodes: [0, 1] }).stdout;
  if (!/^Filesystem features:.*\bneeds_recovery\b/m.test(sb)) throw new Error(`crashed copy ${image} does not need recovery:\n${sb}`);
  const times = await withLoopMount(original, (mnt) => copyOut(mnt, truthDir), { readOnly: true, options: "noatime" });
  return { image, original, truthDir, times, extras, journalOnly };
}
