// The crash sweep over the public API (the dm-log-writes / CrashMonkey model):
// a seeded workload (crash-workload.ts) on an image whose free space holds a
// marker, every write and flush recorded; then crash states at sampled flush
// points (all of them with CRASH_ALL=1): everything before the flush plus
// none, all or a random subset of the writes after it up to the next flush.
// Each state must replay (our read-write mount) to an e2fsck-clean image with
// every durable fact of the trace, and in data=ordered and data=journal no
// file may hold the marker (stale data). A few states per mode go to the
// kernel too, whose replay must show the same tree as ours.

import * as nfs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { MemoryDevice, mkfs, mount, RecordingDevice } from "../../host/index.js";
import type { Volume } from "../../host/vfs/volume.js";
import { expectClean, FIXED } from "./bh-write.js";
import { type CrashPoint, expectations, runWorkload, sha, type Trace } from "./crash-workload.js";
import { loopMountSupport, withLoopMountSync } from "./kernel.js";
import { mulberry32 } from "./random.js";

export const MARKER = Buffer.from("STALE!!!");
const MARK = MARKER.readBigUInt64LE(0);

/** A device whose every byte that mkfs leaves alone holds the marker. */
export function markedImage(size: number, blockSize: number): Uint8Array {
  const img = new Uint8Array(size);
  for (let i = 0; i < size; i += 8) img.set(MARKER, i);
  mkfs(new MemoryDevice(img), { size, blockSize, ...FIXED });
  return img;
}

/** Offset of the first 8-byte-aligned marker in `b`, or -1. */
export function findMarker(b: Uint8Array): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i + 8 <= b.length; i += 8) if (v.getBigUint64(i, true) === MARK) return i;
  return -1;
}

interface WalkFs {
  readdirSync(p: string): unknown;
  lstatSync(p: string): { ino: number | bigint; nlink: number | bigint; size: number | bigint; isDirectory(): boolean; isSymbolicLink(): boolean };
  readFileSync(p: string): Buffer;
  readlinkSync(p: string): unknown;
}

/** Every name under `root` with its type, inode, links, size and content hash (or target); files' contents by path. */
export function walk(f: WalkFs, root: string): { listing: Record<string, string>; contents: Map<string, Buffer> } {
  const listing: Record<string, string> = {};
  const contents = new Map<string, Buffer>();
  const go = (rel: string): void => {
    for (const name of (f.readdirSync(root + rel || "/") as string[]).sort()) {
      const r = `${rel}/${name}`;
      const st = f.lstatSync(root + r);
      if (st.isDirectory()) { listing[r] = `dir ino ${st.ino}`; go(r); }
      else if (st.isSymbolicLink()) listing[r] = `symlink ino ${st.ino} -> ${String(f.readlinkSync(root + r))}`;
      else {
        const b = f.readFileSync(root + r);
        contents.set(r, b);
        listing[r] = `file ino ${st.ino} nlink ${st.nlink} size ${st.size} ${sha(b)}`;
      }
    }
  };
  go("");
  return { listing, contents };
}

export interface SweepMode { name: string; mountOptions: string | undefined; noStale: boolean }

export const MODES: SweepMode[] = [
  { name: "data=ordered", mountOptions: undefined, noStale: true },
  { name: "data=journal", mountOptions: "data=journal", noStale: true },
  { name: "data=writeback", mountOptions: "data=writeback", noStale: false },
];

export interface SweepResult { states: number; flushes: number; picked: number; kernel: number; kernelSkipped?: string; events: number; ops: number }

/** Our replay of a crash state and the checks; returns the replayed tree's listing. */
export const profile: Record<string, number> = {};
const lap = (k: string, t0: number): number => { const t = performance.now(); profile[k] = (profile[k] ?? 0) + t - t0; return t; };

function checkState(work: string, img: Uint8Array, t: Trace, c: CrashPoint, mode: SweepMode, label: string): Record<string, string> {
  const file = path.join(work, "state.img");
  let t0 = performance.now();
  try {
    mount(new MemoryDevice(img), { cacheSize: 16 << 20 }).unmount();
  } catch (e) {
    throw new Error(`${label}: our replay failed: ${(e as Error).stack}`);
  }
  t0 = lap("replay", t0);
  nfs.writeFileSync(file, img);
  t0 = lap("write", t0);
  expectClean(file);
  t0 = lap("e2fsck", t0);
  const vol: Volume = mount(img, { readOnly: true, cacheSize: 16 << 20 });
  try {
    const { listing, contents } = walk(vol as unknown as WalkFs, "");
    const want = expectations(t, c);
    for (const f of want.names) {
      const at = `/${f.path}`;
      const got = listing[at];
      const why = `${label}: ${at} was made durable (${f.kind}) by flush ${f.flush}`;
      if (f.kind === "absent") { expect(got, why).toBeUndefined(); continue; }
      expect(got, why).toBeDefined();
      expect(got.startsWith(`${f.kind} ino ${f.ino}`), `${why}: ${got}`).toBe(true);
      if (f.kind === "symlink") expect(got.endsWith(`-> ${f.target}`), why).toBe(true);
      if (f.kind === "file" && want.data.has(f.id!)) {
        const b = contents.get(at)!;
        const d = want.data.get(f.id!)!;
        const id = f.id;
        const ctx = `${label}: ${at} (#${id}, ino ${f.ino}, name fact at flush ${f.flush})\nops on it:\n${opsOn(t, c, `#${id} `)}\n`;
        expect(b.length, `${ctx} size after its fsync`).toBe(d.length);
        if (!b.equals(d)) {
          let i = 0;
          while (b[i] === d[i]) i++;
          throw new Error(`${ctx} differs from its fsync'd bytes at ${i} (of ${d.length})`);
        }
      }
    }
    if (mode.noStale) {
      for (const [p, b] of contents) {
        const i = findMarker(b);
        if (i >= 0) throw new Error(`${label}: ${p} shows stale data (the marker) at ${i}`);
      }
    }
    return listing;
  } finally {
    vol.unmount();
    lap("check", t0);
  }
}

const shortLog = (t: Trace, c: CrashPoint): string => t.log.filter((l) => Number(l.split("..")[0]) <= c.upto).slice(-12).join("\n");
/** The ops of the log that name `what` (a path or a #id), up to the crash. */
const opsOn = (t: Trace, c: CrashPoint, what: string): string => t.log.filter((l) => Number(l.split("..")[0]) <= c.upto && l.includes(what)).join("\n");

/**
 * Runs the workload in `mode` on a `size` image of `blockSize` blocks, then
 * checks `budget` crash states (CRASH_ALL=1: three at every flush) and `kernelStates` with the kernel too.
 */
export async function sweep(work: string, mode: SweepMode, o: { blockSize: number; size: number; seed: number; ops: number; budget: number; kernelStates: number }): Promise<SweepResult> {
  const base = markedImage(o.size, o.blockSize);
  let marked = 0;
  for (let p = 0; p < o.size; p += o.blockSize) if (findMarker(base.subarray(p, p + 8)) === 0) marked++;
  expect(marked, "free blocks hold the marker").toBeGreaterThan(o.size / o.blockSize / 2);
  const rec = new RecordingDevice(new MemoryDevice(base.slice()));
  const vol = mount(rec, { mountOptions: mode.mountOptions });
  const t = runWorkload(vol, rec, { seed: o.seed, ops: o.ops });
  // The volume is dropped dirty: what the device holds now is the last crash state.
  const flushes = rec.flushPoints();
  const rnd = mulberry32(o.seed ^ 0x5eed);
  const all = process.env.CRASH_ALL === "1";
  const picked = all ? flushes : [...new Set([flushes[flushes.length - 1], ...Array.from({ length: Math.ceil(o.budget / 3) * 2 }, () => flushes[Math.floor(rnd() * flushes.length)])])]
    .slice(0, Math.ceil(o.budget / 3));
  picked.sort((a, b) => a - b);
  const loop = loopMountSupport();
  const result: SweepResult = { states: 0, flushes: flushes.length, picked: picked.length, kernel: 0, events: rec.events.length, ops: t.log.length };
  if (!loop.ok) result.kernelSkipped = loop.reason;
  const kernelAt = new Set(picked.filter((_, i) => i % Math.max(1, Math.floor(picked.length / o.kernelStates)) === 0).slice(0, o.kernelStates));
  for (const f of picked) {
    const next = flushes.find((x) => x > f) ?? rec.events.length;
    const upto = next - 1;
    const flight = new Set(rec.inFlight(upto).filter((i) => i > f));
    const variants: [string, CrashPoint, ((i: number) => boolean) | undefined][] = [
      ["none", { flush: f, upto: f }, undefined],
      ["all", { flush: f, upto }, undefined],
      ["subset", { flush: f, upto }, () => rnd() < 0.5],
    ];
    for (const [kind, c, keep] of variants) {
      if (kind !== "none" && !flight.size) continue;
      const t1 = performance.now();
      const img = rec.crashImage(base, c.upto, keep);
      lap("image", t1);
      const label = `${mode.name} ${o.blockSize}: crash at flush ${f} + ${kind} of ${flight.size} writes\nlast ops:\n${shortLog(t, c)}\n`;
      const crashed = img.slice();
      const ours = checkState(work, img, t, c, mode, label);
      result.states++;
      await new Promise((r) => setImmediate(r)); // let the test runner's worker talk between states
      if (loop.ok && kernelAt.has(f) && kind === "subset") kernelAt.delete(f), compareKernel(work, crashed, ours, label), result.kernel++;
      if (loop.ok && kernelAt.has(f) && kind === "none" && !flight.size) kernelAt.delete(f), compareKernel(work, crashed, ours, label), result.kernel++;
    }
  }
  return result;
}

/** The kernel replays the same crash image (a read-write loop mount) and must see the tree our replay gave. */
function compareKernel(work: string, img: Uint8Array, ours: Record<string, string>, label: string): void {
  const file = path.join(work, "kernel.img");
  nfs.writeFileSync(file, img);
  const theirs = withLoopMountSync(file, (mnt) => walk(nfs as unknown as WalkFs, mnt).listing);
  expect(theirs, `${label}: the kernel's replay`).toEqual(ours);
  expectClean(file);
}
