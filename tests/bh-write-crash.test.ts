// Crash consistency of the bh write path (the dm-log-writes model): a
// workload of appends and fsyncs through a RecordingDevice, then crash states
// at sampled flush points (everything before the flush, plus all or a random
// subset of the writes in flight). Each must replay (ours, and the kernel's
// for a few) to an e2fsck-clean image with every fsync'd byte, and in
// data=ordered no file may show stale data: the image's free blocks were
// prefilled with a marker before mkfs, so a marker inside a file is stale.

import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryDevice, mkfs, mount, RecordingDevice } from "../host/index.js";
import { BhBufferedIO } from "../host/buffered/bh/read.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { missingTools } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";
import { createFile, expectClean, FIXED, pattern, rmrf } from "./helpers/bh-write.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`bh-write-crash: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`bh-write-crash: kernel replays skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bhcrash-")); });
afterAll(() => { if (work) rmrf(work); });

const MARKER = Buffer.from("STALE!!!");
const SIZE = 48 << 20;

/** A device whose every byte outside what mkfs writes holds the marker. */
function markedImage(): Uint8Array {
  const bytes = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i += 8) bytes.set(MARKER, i);
  mkfs(new MemoryDevice(bytes), { size: SIZE, blockSize: 4096, ...FIXED });
  return bytes;
}

function hasMarker(b: Buffer): number {
  for (let i = 0; i + 8 <= b.length; i += 8) if (b.readBigUInt64LE(i) === MARKER.readBigUInt64LE(0)) return i;
  return -1;
}

interface Synced { at: number; len: number }

const NAMES = ["f0", "f1", "f2", "f3"];

/** Appends (some leaving sparse gaps) and fsyncs; returns each file's final model and its fsync points. */
function workload(rec: RecordingDevice, opts: string | undefined, seed: number): { models: Buffer[]; synced: Synced[][] } {
  const vol = mount(rec, { mountOptions: opts });
  const fs = vol.fs;
  const io = new BhBufferedIO(fs);
  const rnd = mulberry32(seed);
  const files: Ext4Inode[] = NAMES.map((n) => createFile(fs, n));
  const models = NAMES.map(() => Buffer.alloc(0));
  const synced: Synced[][] = NAMES.map(() => []);
  try {
    for (let op = 0; op < 60; op++) {
      const k = Math.floor(rnd() * NAMES.length);
      const gap = rnd() < 0.15 ? Math.floor(rnd() * 40000) : 0;
      const len = 1 + Math.floor(rnd() * (rnd() < 0.3 ? 5000 : 200000));
      const data = pattern(seed * 1000 + op, len);
      const pos = models[k].length + gap;
      expect(io.write(files[k], pos, data)).toBe(len);
      models[k] = Buffer.concat([models[k], Buffer.alloc(gap), Buffer.from(data)]);
      const r = rnd();
      if (r < 0.25) {
        io.fsync(files[k], r < 0.1);
        synced[k].push({ at: rec.events.length - 1, len: models[k].length });
      } else if (r < 0.35) {
        io.writeback(files[k], 0, Infinity, false);
      }
    }
  } finally {
    for (const f of files) fs.iput(f);
    vol.unmount();
  }
  return { models, synced };
}

function checkState(img: Uint8Array, models: Buffer[], synced: Synced[][], at: number, ordered: boolean, label: string): void {
  const file = path.join(work, "state.img");
  // Our replay (a read-write mount replays in place), then e2fsck on the result.
  const dev = new MemoryDevice(img);
  mount(dev).unmount();
  nfs.writeFileSync(file, img);
  expectClean(file);
  const vol = mount(img, { readOnly: true });
  try {
    const names = vol.readdirSync("/") as string[];
    for (let k = 0; k < NAMES.length; k++) {
      const mine = synced[k].filter((s) => s.at <= at).pop();
      if (!names.includes(NAMES[k])) {
        expect(mine, `${label}: ${NAMES[k]} was fsync'd but is missing`).toBeUndefined();
        continue;
      }
      const got = vol.readFileSync(`/${NAMES[k]}`) as Buffer;
      if (mine) {
        expect(got.length, `${label}: ${NAMES[k]} size`).toBeGreaterThanOrEqual(mine.len);
        expect(got.subarray(0, mine.len).equals(models[k].subarray(0, mine.len)), `${label}: ${NAMES[k]} fsync'd bytes`).toBe(true);
      }
      if (ordered) expect(hasMarker(got), `${label}: ${NAMES[k]} shows stale data`).toBe(-1);
      if (!ordered) continue;
      // Every byte there is the byte written or a zero (writeback had not reached it, or an older version of its block).
      const n = Math.min(got.length, models[k].length);
      for (let i = 0; i < n; i += 4096) {
        const a = got.subarray(i, Math.min(n, i + 4096));
        const b = models[k].subarray(i, Math.min(n, i + 4096));
        if (!a.equals(b) && a.some((x, j) => x !== 0 && x !== b[j])) {
          throw new Error(`${label}: ${NAMES[k]} block at ${i} holds bytes never written there`);
        }
      }
    }
  } finally {
    vol.unmount();
  }
}

const modes: [string, string | undefined, boolean][] = [
  ["data=ordered (delalloc, dioread_nolock)", undefined, true],
  ["data=ordered dioread_lock", "dioread_lock", true],
  ["data=ordered nodelalloc", "nodelalloc", true],
  ["data=journal", "data=journal", true],
  ["data=writeback", "data=writeback", false],
];

d("bh writes survive crashes", () => {
  it.each(modes)("%s: every sampled crash state replays clean, with every fsync'd byte and no stale data", (_name, opts, ordered) => {
    const base = markedImage();
    let marked = 0;
    for (let p = 0; p < SIZE; p += 4096) if (hasMarker(Buffer.from(base.buffer, p, 4096)) === 0) marked++;
    expect(marked, "free blocks hold the marker").toBeGreaterThan(SIZE / 4096 / 2);
    const inner = new MemoryDevice(base.slice());
    const rec = new RecordingDevice(inner);
    const seed = 7 + (opts?.length ?? 0);
    const { models, synced } = workload(rec, opts, seed);
    const flushes = rec.flushPoints();
    expect(flushes.length).toBeGreaterThan(10);
    const rnd = mulberry32(seed);
    const picks = new Set<number>([flushes[flushes.length - 1], rec.events.length - 1]);
    while (picks.size < 10) picks.add(flushes[Math.floor(rnd() * flushes.length)]);
    for (const at of picks) {
      checkState(rec.crashImage(base, at), models, synced, at, ordered, `crash after event ${at}`);
      // The same point with a random subset of the next flush interval's writes landed.
      const next = flushes.find((f) => f > at) ?? rec.events.length - 1;
      const upto = next - 1;
      const flight = new Set(rec.inFlight(upto));
      if (flight.size) checkState(rec.crashImage(base, upto, (i) => !flight.has(i) || rnd() < 0.5), models, synced, at, ordered, `crash before event ${next} (subset)`);
    }
    if (loop.ok) {
      // The kernel replays two of the states too, and sees every fsync'd byte.
      for (const at of [...picks].slice(0, 2)) {
        const file = path.join(work, "kernel.img");
        nfs.writeFileSync(file, rec.crashImage(base, at));
        withLoopMountSync(file, (mnt) => {
          for (let k = 0; k < NAMES.length; k++) {
            const mine = synced[k].filter((s) => s.at <= at).pop();
            if (!mine) continue;
            const got = nfs.readFileSync(path.join(mnt, NAMES[k]));
            expect(got.subarray(0, mine.len).equals(models[k].subarray(0, mine.len)), `kernel: ${NAMES[k]}`).toBe(true);
            if (ordered) expect(hasMarker(got), `kernel: ${NAMES[k]} shows stale data`).toBe(-1);
          }
        });
        expectClean(file);
      }
    }
  });
});

d("fdatasync commits the allocation of its delayed blocks", () => {
  // Found by the API crash sweep (tests/crash-sweep-1k.test.ts): a fallocate
  // over part of a file's delayed blocks writes those back and moves
  // i_disksize, another file's fsync commits that, then fdatasync writes the
  // rest: new blocks allocated and converted to written, i_disksize unchanged.
  // Only i_disksize moved the datasync tid, so the allocation was never
  // committed and the fdatasync'd bytes read back as zeros after a crash
  // (ext4_update_inode_fsync_trans(handle, inode, 1) in ext4_map_blocks).
  it.each([["4k", 4096], ["1k", 1024]])("%s: a crash right after fdatasync keeps its bytes", (_n, bs) => {
    const base = new Uint8Array(16 << 20);
    mkfs(new MemoryDevice(base), { size: base.length, blockSize: bs, ...FIXED });
    const rec = new RecordingDevice(new MemoryDevice(base.slice()));
    const vol = mount(rec);
    const a = Buffer.from(pattern(1, 4883)), b = Buffer.from(pattern(2, 32735));
    let fd = vol.openSync("/f", "w");
    vol.writeSync(fd, a, 0, a.length, 0);
    vol.writeSync(fd, b, 0, b.length, 30921);
    vol.fallocateSync(fd, 27443, 35178, { keepSize: true });
    vol.closeSync(fd);
    fd = vol.openSync("/g", "w");
    vol.writeSync(fd, a, 0, 100, 0);
    vol.fsyncSync(fd);
    vol.closeSync(fd);
    fd = vol.openSync("/f", "r");
    vol.fdatasyncSync(fd);
    vol.closeSync(fd);
    const img = rec.crashImage(base, rec.events.length - 1);
    mount(new MemoryDevice(img)).unmount();
    const file = path.join(work, "fdatasync.img");
    nfs.writeFileSync(file, img);
    expectClean(file);
    const v = mount(img, { readOnly: true });
    try {
      const got = v.readFileSync("/f") as Buffer;
      expect(got.length).toBe(30921 + b.length);
      expect(got.subarray(0, a.length).equals(a), "the first blocks, allocated by the fdatasync").toBe(true);
      expect(got.subarray(30921).equals(b)).toBe(true);
    } finally {
      v.unmount();
    }
  });
});
