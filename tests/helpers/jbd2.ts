// Helpers for the jbd2 writer's tests: the recording device over memory (every
// write and flush logged, any prefix of them rebuilt as a crash state), images made by mkfs.ext4 -d, and the judges (e2fsck, debugfs, the
// kernel's replay through a loop mount).

import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { MemoryDevice } from "../../host/device/memory-device.js";
import { type DeviceEvent, RecordingDevice as LoggingDevice } from "../../host/device/recording-device.js";
import { mount } from "../../host/index.js";
import type { Ext4 } from "../../host/fs/super.js";
import type { Volume } from "../../host/vfs/volume.js";
import { runSync } from "./exec.js";
import { mkfsEnv } from "./images.js";
import { loopMountSupport, withLoopMountSync } from "./kernel.js";

export type DevOp = DeviceEvent;

/**
 * The public RecordingDevice over bytes in memory, with the views these tests
 * read: the log as `ops`, the device as a crash after the first `n`
 * operations leaves it (`stateAt`), and the bytes now (`snapshot`).
 */
export class RecordingDevice extends LoggingDevice {
  readonly base: Uint8Array;
  constructor(readonly bytes: Uint8Array) {
    super(new MemoryDevice(bytes));
    this.base = bytes.slice();
  }
  get ops(): DevOp[] { return this.events; }
  stateAt(n: number): Uint8Array { return this.crashImage(this.base, n - 1); }
  snapshot(): Uint8Array { return this.bytes.slice(); }
}

export function fsOf(vol: Volume): Ext4 { return (vol as unknown as { fs: Ext4 }).fs; }

/** mkfs.ext4 -d with fixed UUID, hash seed and time; 4 KiB blocks unless `args` says -b. */
export function mkfsImage(work: string, name: string, tree: string, args: string[], size = "32M"): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", [
    "-q", "-F", "-U", "6d0e4b2a-61b1-4c1e-9d5a-0a0b0c0d0e0f", "-E", "lazy_itable_init=0,hash_seed=1b2c3d4e-0000-4000-8000-000000000001",
    ...(args.includes("-b") ? [] : ["-b", "4096"]), ...args, "-d", tree, img, size,
  ], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

/** A small tree: `n` files f1..fn. */
export function makeTree(work: string, n: number): string {
  const tree = path.join(work, "tree");
  fs.mkdirSync(tree, { recursive: true });
  for (let i = 1; i <= n; i++) fs.writeFileSync(path.join(tree, `f${i}`), `file ${i}\n`);
  return tree;
}

export function fsckClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}

/** debugfs's uid of each path. */
export function debugfsUids(img: string, paths: string[]): number[] {
  const r = runSync("debugfs", ["-f", "-", img], { input: paths.map((p) => `stat ${p}`).join("\n") + "\n" });
  const uids = [...r.stdout.matchAll(/User:\s+(\d+)/g)].map((m) => Number(m[1]));
  expect(uids.length, r.stdout + r.stderr).toBe(paths.length);
  return uids;
}

export function dumpe2fsFields(img: string): Map<string, string> {
  const out = runSync("dumpe2fs", ["-h", img]).stdout;
  const m = new Map<string, string>();
  for (const line of out.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

/** The kernel replays the image (a read-write loop mount and unmount); false (reason printed) where loop mounts do not work. */
export function kernelReplay(img: string, why: string): boolean {
  const s = loopMountSupport();
  if (!s.ok) {
    console.log(`${why}: kernel replay skipped: ${s.reason}`);
    return false;
  }
  withLoopMountSync(img, () => undefined, { options: "noatime" });
  return true;
}

/** Our replay: a read-write mount and unmount. */
export function ourReplay(img: string | Uint8Array): void {
  mount(img).unmount();
}

/** Block numbers at which two images differ. */
export function differingBlocks(a: Uint8Array, b: Uint8Array, bs: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < a.length; o += bs) {
    const x = a.subarray(o, o + bs);
    const y = b.subarray(o, o + bs);
    if (!Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length))) out.push(o / bs);
  }
  return out;
}

/** The journal's device blocks (debugfs blocks <8>). */
export function journalDeviceBlocks(img: string): Set<number> {
  return new Set(runSync("debugfs", ["-R", "blocks <8>", img]).stdout.split(/\s+/).filter(Boolean).map(Number));
}

export function writeImage(file: string, bytes: Uint8Array): void { fs.writeFileSync(file, bytes); }
