// The log itself: wrap-around of a minimum-size journal over thousands of
// transactions (checkpoints and tail moves while the head laps the log,
// never overwriting a transaction not yet checkpointed: lwext4's #86),
// escaping of blocks that begin with the jbd2 magic, and revoke records with
// their cancellation. Every crash state is replayed by the kernel and by us.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import type { Ext4 } from "../host/fs/super.js";
import { JBD2_MAGIC } from "../host/format/jbd2.js";
import { missingTools, runSync } from "./helpers/exec.js";
import {
  debugfsUids, differingBlocks, fsckClean, fsOf, journalDeviceBlocks, kernelReplay, makeTree, mkfsImage, RecordingDevice,
} from "./helpers/jbd2.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`jbd2-log: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const FILES = 20;
const paths = Array.from({ length: FILES }, (_, i) => `/f${i + 1}`);
let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-jbd2-log-"));
  tree = makeTree(work, FILES);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function setUid(f: Ext4, ino: number, uid: number): void {
  const h = f.startHandle(2);
  const inode = f.inode(ino);
  inode.uid = uid;
  markInodeDirty(h, f, inode);
  h.stop();
}

/** Replays `state` with us and with the kernel; returns both images (kernel undefined where loop mounts do not work). */
function replayBoth(name: string, state: Uint8Array, bs: number): { ours: Buffer; kernel?: Buffer } {
  const ours = path.join(work, `${name}-ours.img`);
  const kern = path.join(work, `${name}-kernel.img`);
  fs.writeFileSync(ours, state);
  fs.writeFileSync(kern, state);
  mount(ours).unmount();
  fsckClean(ours);
  const out: { ours: Buffer; kernel?: Buffer } = { ours: fs.readFileSync(ours) };
  if (kernelReplay(kern, `jbd2-log ${name}`)) {
    fsckClean(kern);
    out.kernel = fs.readFileSync(kern);
    const skip = journalDeviceBlocks(ours);
    skip.add(bs === 1024 ? 1 : 0);
    expect(differingBlocks(out.ours, out.kernel, bs).filter((b) => !skip.has(b)), `${name}: our replay vs the kernel's`).toEqual([]);
  }
  return out;
}

function blockOf(img: Uint8Array, b: number, bs: number): Uint8Array { return img.subarray(b * bs, (b + 1) * bs); }

/** A block no file or metadata uses (debugfs ffb): its contents mean nothing to e2fsck. */
function freeBlock(img: string, goal: number): number {
  const m = /Free blocks found: (\d+)/.exec(runSync("debugfs", ["-R", `ffb 1 ${goal}`, img]).stdout);
  expect(m).not.toBeNull();
  return Number(m![1]);
}

d("journal log", () => {
  it.each([
    ["1k-min", ["-b", "1024", "-J", "size=1"]],
    ["4k-min-32bit-nocsum", ["-O", "^metadata_csum,^64bit", "-J", "size=4"]],
  ])("%s: thousands of transactions lap a minimum journal; crash states mid-lap replay exactly", (name, args) => {
    const img = mkfsImage(work, `wrap-${name}`, tree, args);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    const j = f.journal!;
    const bs = f.sb.blockSize;
    expect(j.last).toBe(1024);
    const inos = paths.map((p) => vol.statSync(p).ino);
    const uids = paths.map(() => 0);
    const snaps: { at: number; state: Uint8Array; uids: number[] }[] = [];
    const TOTAL = 3000;
    let laps = 0;
    let lastHead = j.head;
    for (let k = 0; k < TOTAL; k++) {
      setUid(f, inos[k % FILES], 10000 + k);
      // Several handles per transaction now and then.
      if (k % 7 !== 0) f.commit();
      uids[k % FILES] = 10000 + k;
      if (j.head < lastHead) laps++;
      lastHead = j.head;
      // The log never holds more than its area, and the head never runs into the tail.
      expect(j.free).toBeGreaterThan(0);
      if (k === 700 || k === 1901 || k === 2999) {
        f.commit();
        snaps.push({ at: k, state: rec.snapshot(), uids: [...uids] });
      }
    }
    expect(laps).toBeGreaterThanOrEqual(5);
    expect(j.stats.checkpoints).toBeGreaterThan(0);
    for (const s of snaps) {
      const out = replayBoth(`wrap-${name}-${s.at}`, s.state, bs);
      const file = path.join(work, `wrap-${name}-${s.at}-ours.img`);
      expect(debugfsUids(file, paths), `after ${s.at}`).toEqual(s.uids);
      if (out.kernel) expect(debugfsUids(path.join(work, `wrap-${name}-${s.at}-kernel.img`), paths)).toEqual(s.uids);
    }
    vol.unmount();
    const clean = path.join(work, `wrap-${name}-clean.img`);
    fs.writeFileSync(clean, rec.bytes);
    fsckClean(clean);
    expect(debugfsUids(clean, paths)).toEqual(uids);
  }, 240_000);

  it.each([
    ["4k-v3", []],
    ["1k-v1-32bit", ["-b", "1024", "-O", "^metadata_csum,^64bit"]],
  ])("%s: a block that begins with the jbd2 magic is escaped in the log copy only, and replays whole", (name, args) => {
    // No metadata block a consistent filesystem holds can begin with c0 3b 39 98 (an inode's
    // mode would have no valid type, a directory's first inode number would be past any
    // inode count), so the block journaled here is a free block: e2fsck ignores its bytes.
    const img = mkfsImage(work, `escape-${name}`, tree, args);
    const target = freeBlock(img, 3000);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec, { mountOptions: name.includes("v1") ? "journal_checksum" : undefined });
    const f = fsOf(vol);
    const bs = f.sb.blockSize;
    const want = new Uint8Array(bs).fill(0x5a);
    new DataView(want.buffer).setUint32(0, JBD2_MAGIC);
    const h = f.startHandle(1);
    const bh = f.bcache.getblk(target);
    h.getCreateAccess(bh);
    bh.data.set(want);
    h.dirtyMetadata(bh);
    h.stop();
    f.commit();
    expect(f.journal!.stats.escaped).toBe(1);
    expect(Buffer.from(bh.data).equals(Buffer.from(want)), "the cached buffer keeps its magic").toBe(true);
    f.bcache.brelse(bh);
    const state = rec.snapshot();
    expect(Buffer.from(blockOf(state, target, bs)).equals(Buffer.from(new Uint8Array(bs))), "not home before the checkpoint").toBe(true);
    const crash = path.join(work, `escape-${name}-crash.img`);
    fs.writeFileSync(crash, state);
    const dump = runSync("debugfs", ["-R", "logdump -a", crash]).stdout;
    const m = new RegExp(`FS block ${target} logged at journal block (\\d+) \\(flags 0x([0-9a-f]+)\\)`).exec(dump);
    expect(m, dump).not.toBeNull();
    expect(parseInt(m![2], 16) & 1, "ESCAPE tag flag").toBe(1);
    const jblocks = runSync("debugfs", ["-R", "blocks <8>", crash]).stdout.split(/\s+/).filter(Boolean).map(Number);
    const logged = blockOf(state, jblocks[Number(m![1])], bs);
    expect([...logged.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(Buffer.from(logged.subarray(4)).equals(Buffer.from(want.subarray(4)))).toBe(true);
    const out = replayBoth(`escape-${name}`, state, bs);
    expect(Buffer.from(blockOf(out.ours, target, bs)).equals(Buffer.from(want)), "our replay").toBe(true);
    if (out.kernel) expect(Buffer.from(blockOf(out.kernel, target, bs)).equals(Buffer.from(want)), "kernel replay").toBe(true);
    vol.unmount();
  });

  it.each([
    ["4k-v3", []],
    ["1k-nocsum-32bit", ["-b", "1024", "-O", "^metadata_csum,^64bit"]],
  ])("%s: a revoked block is not replayed from older transactions; journaled again, the newer copy is", (name, args) => {
    // Free blocks again (see above), so that the forgotten contents cannot matter to e2fsck.
    const img = mkfsImage(work, `revoke-${name}`, tree, args);
    const a = freeBlock(img, 3000);
    const b = freeBlock(img, a + 10);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    const bs = f.sb.blockSize;
    const fill = (blk: number, v: number, forgetFirst = false, forgetAfter = false) => {
      const h = f.startHandle(2);
      const bh = f.bcache.getblk(blk);
      if (forgetFirst) h.forget(blk, true, bh);
      h.getCreateAccess(bh);
      bh.data.fill(v);
      h.dirtyMetadata(bh);
      if (forgetAfter) h.forget(blk, true, bh);
      h.stop();
      f.bcache.brelse(bh);
    };
    const revoke = (blk: number) => {
      const h = f.startHandle(1);
      h.forget(blk, true, f.bcache.peek(blk));
      h.stop();
    };
    fill(a, 0x11);
    fill(b, 0x21);
    f.commit();
    revoke(a); // T: revoke a
    f.commit();
    const s1 = rec.snapshot(); // a: revoked after its only copy; b: logged
    fill(a, 0x44, true); // forget + journal again in one transaction: the revoke is cancelled
    fill(b, 0x55, false, true); // journaled, then revoked in the same transaction
    f.commit();
    const s2 = rec.snapshot();
    const zero = new Uint8Array(bs);
    const expectBlock = (img: Uint8Array, blk: number, v: number | null, what: string) => {
      const want = v === null ? zero : new Uint8Array(bs).fill(v);
      expect(Buffer.from(blockOf(img, blk, bs)).equals(Buffer.from(want)), what).toBe(true);
    };
    const r1 = replayBoth(`revoke-${name}-1`, s1, bs);
    expectBlock(r1.ours, a, null, "s1 ours: a revoked");
    expectBlock(r1.ours, b, 0x21, "s1 ours: b replayed");
    if (r1.kernel) { expectBlock(r1.kernel, a, null, "s1 kernel: a"); expectBlock(r1.kernel, b, 0x21, "s1 kernel: b"); }
    const r2 = replayBoth(`revoke-${name}-2`, s2, bs);
    expectBlock(r2.ours, a, 0x44, "s2 ours: a journaled again after the cancelled revoke");
    expectBlock(r2.ours, b, null, "s2 ours: b revoked");
    if (r2.kernel) { expectBlock(r2.kernel, a, 0x44, "s2 kernel: a"); expectBlock(r2.kernel, b, null, "s2 kernel: b"); }
    expect(f.journal!.sb.featureIncompat & 0x1, "INCOMPAT_REVOKE").toBe(1);
    vol.unmount();
    const clean = path.join(work, `revoke-${name}-clean.img`);
    fs.writeFileSync(clean, rec.bytes);
    fsckClean(clean);
    // Forgotten blocks are never written home by the checkpoint.
    expectBlock(rec.bytes, b, null, "b never written home");
    expectBlock(rec.bytes, a, 0x44, "a written home");
  });
});
