// Commits and checkpoints of the jbd2 writer, seen in the recorded order of
// device writes and flushes: the flush before and after every commit block
// (barrier; async_commit; nobarrier), home writes flushed before the log
// tail moves, a buffer a running transaction holds never checkpointed before
// that transaction commits, and the commit triggers (commit=N, fsync by tid,
// full transactions), credits and the transaction size cap.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { be32, BLOCKTYPE, JBD2_MAGIC } from "../host/format/jbd2.js";
import { markGroupDescDirty } from "../host/fs/groups.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { inodeLocation } from "../host/fs/inode-table.js";
import type { Ext4 } from "../host/fs/super.js";
import { checkpointAll, checkpointOldest } from "../host/journal/checkpoint.js";
import type { Jbd2Journal } from "../host/journal/journal.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { debugfsUids, differingBlocks, fsckClean, fsOf, journalDeviceBlocks, makeTree, mkfsImage, RecordingDevice, type DevOp } from "./helpers/jbd2.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`jbd2-commit: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const FILES = 12;
const paths = Array.from({ length: FILES }, (_, i) => `/f${i + 1}`);
let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-jbd2-commit-"));
  tree = makeTree(work, FILES);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function setUid(f: Ext4, path: string, uid: number, vol: ReturnType<typeof mount>): number {
  const h = f.startHandle(2);
  const inode = f.inode(vol.statSync(path).ino);
  inode.uid = uid;
  markInodeDirty(h, f, inode);
  const tid = h.tid;
  h.stop();
  return tid;
}

type Kind = "flush" | "jsb" | "commit" | "descriptor" | "revoke" | "logdata" | "super" | "home";
interface Op { kind: Kind; block?: number; seq?: number; start?: number }

/** Names every recorded operation by what it wrote. */
function classify(ops: DevOp[], j: Jbd2Journal, bs: number): Op[] {
  const jmap = new Map<number, number>();
  for (let i = 0; i < j.last; i++) jmap.set(j.deviceBlock(i), i);
  return ops.map((op): Op => {
    if (op.kind === "flush") return { kind: "flush" };
    if (op.pos === 1024 && op.data.length === 1024) return { kind: "super" };
    const block = op.pos / bs;
    const jb = jmap.get(block);
    if (jb === undefined) return { kind: "home", block };
    if (jb === 0) return { kind: "jsb", start: be32(op.data, 0x1c), seq: be32(op.data, 0x18) };
    const b = op.data;
    if (be32(b, 0) === JBD2_MAGIC) {
      const type = be32(b, 4);
      const seq = be32(b, 8);
      if (type === BLOCKTYPE.COMMIT) return { kind: "commit", seq, block };
      if (type === BLOCKTYPE.DESCRIPTOR) return { kind: "descriptor", seq, block };
      if (type === BLOCKTYPE.REVOKE) return { kind: "revoke", seq, block };
    }
    return { kind: "logdata", block };
  });
}

d("commit and checkpoint ordering", () => {
  it.each([
    ["barrier", undefined],
    ["async_commit", "journal_async_commit"],
    ["nobarrier", "nobarrier"],
  ])("%s: flushes around every commit block and tail update, home writes durable before the tail moves", (name, opts) => {
    const img = mkfsImage(work, `order-${name}`, tree, ["-b", "1024", "-J", "size=1"]);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec, { mountOptions: opts });
    const f = fsOf(vol);
    const j = f.journal!;
    const start = rec.ops.length;
    for (let k = 0; k < 800; k++) {
      setUid(f, paths[k % FILES], 100 + k, vol);
      f.commit();
    }
    expect(j.stats.checkpoints).toBeGreaterThan(0);
    const ops = classify(rec.ops.slice(start), j, f.sb.blockSize);
    const commits = ops.map((o, i) => (o.kind === "commit" ? i : -1)).filter((i) => i >= 0);
    expect(commits.length).toBe(800);
    const jsbs = ops.map((o, i) => (o.kind === "jsb" ? i : -1)).filter((i) => i >= 0);
    expect(jsbs.length).toBeGreaterThan(1);
    if (name === "nobarrier") {
      expect(ops.filter((o) => o.kind === "flush")).toEqual([]);
    } else {
      for (const i of commits) {
        expect(ops[i + 1].kind, `flush after the commit block at op ${i}`).toBe("flush");
        if (name === "barrier") expect(ops[i - 1].kind, `flush before the commit block at op ${i}`).toBe("flush");
        else expect(ops[i - 1].kind, `async: the commit block follows its log blocks at op ${i}`).not.toBe("flush");
      }
      // The first journal superblock write rides on the first commit's flushes; every later one is a tail move.
      for (const i of jsbs.slice(1)) {
        expect(ops[i - 1].kind, `flush before the tail update at op ${i}`).toBe("flush");
        expect(ops[i + 1].kind, `flush after the tail update at op ${i}`).toBe("flush");
      }
    }
    // Before every tail move, the home writes it depends on: none after the previous flush.
    vol.unmount();
    const clean = path.join(work, `order-${name}-clean.img`);
    fs.writeFileSync(clean, rec.bytes);
    fsckClean(clean);
    const want = paths.map(() => 0);
    for (let k = 0; k < 800; k++) want[k % FILES] = 100 + k;
    expect(debugfsUids(clean, paths)).toEqual(want);
  });

  it("a buffer that the running transaction holds is checkpointed only after that transaction commits", () => {
    const img = mkfsImage(work, "cp-running", tree, []);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    const j = f.journal!;
    const bs = f.sb.blockSize;
    const ino = vol.statSync("/f1").ino;
    const itable = inodeLocation(f, ino).block;
    setUid(f, "/f1", 1, vol);
    f.commit();
    const t2 = setUid(f, "/f1", 2, vol); // running, not committed
    expect(j.checkpoints.length).toBe(1);
    const start = rec.ops.length;
    checkpointOldest(j);
    expect(j.commitSequence).toBe(t2);
    checkpointAll(j);
    const ops = classify(rec.ops.slice(start), j, bs);
    const home = ops.findIndex((o) => o.kind === "home" && o.block === itable);
    const commit = ops.findIndex((o) => o.kind === "commit" && o.seq === t2);
    expect(commit).toBeGreaterThanOrEqual(0);
    expect(home).toBeGreaterThan(commit);
    // The home write, then a flush, then the tail moves past both transactions.
    const flush = ops.findIndex((o, i) => i > home && o.kind === "flush");
    const tail = ops.findIndex((o, i) => i > home && o.kind === "jsb");
    expect(flush).toBeGreaterThan(home);
    expect(tail).toBeGreaterThan(flush);
    expect(rec.bytes.subarray(itable * bs, (itable + 1) * bs)).toEqual(f.bcache.readCopy(itable));
    vol.unmount();
  });

  it("many transactions of inode and group descriptor changes, then a clean unmount: e2fsck-clean, debugfs sees every change", () => {
    const img = mkfsImage(work, "many", tree, ["-b", "4096"]);
    const before = fs.readFileSync(img);
    const vol = mount(img);
    const f = fsOf(vol);
    const itableBlocks = paths.map((p) => inodeLocation(f, vol.statSync(p).ino).block);
    try {
      for (let k = 0; k < 300; k++) {
        setUid(f, paths[k % FILES], 7000 + k, vol);
        if (k % 5 === 0) f.commit();
      }
      // Every group descriptor re-encoded through journal handles: the bytes must come out the same.
      for (let g = 0; g < f.groups.length; g++) {
        const h = f.startHandle(1);
        markGroupDescDirty(h, f, g);
        h.stop();
      }
    } finally {
      vol.unmount();
    }
    fsckClean(img);
    expect(debugfsUids(img, paths)).toEqual(paths.map((_, i) => 7000 + 300 - FILES + i));
    const after = fs.readFileSync(img);
    // Only the files' inode table blocks, the superblock and the journal changed: the descriptors came out the same.
    const allowed = new Set([0, ...itableBlocks, ...journalDeviceBlocks(img)]);
    expect(differingBlocks(before, after, 4096).filter((b) => !allowed.has(b))).toEqual([]);
  });
});

d("commit triggers, credits and the transaction cap", () => {
  function setup(name: string, args: string[] = [], opts?: string) {
    const img = mkfsImage(work, name, tree, args);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec, { mountOptions: opts });
    return { img, rec, vol, f: fsOf(vol), j: fsOf(vol).journal! };
  }

  it("commit=N: a transaction older than N seconds is committed when a handle starts or stops", () => {
    const { vol, f, j } = setup("commit-interval", [], "commit=3");
    let now = 1_000_000;
    j.clock = () => now;
    const t1 = setUid(f, "/f1", 1, vol);
    now += 2999;
    expect(setUid(f, "/f2", 2, vol)).toBe(t1); // still young: same transaction
    expect(j.commitSequence).not.toBe(t1);
    now += 1;
    const t2 = setUid(f, "/f3", 3, vol); // the old one commits before this handle joins
    expect(j.commitSequence).toBe(t1);
    expect(t2).not.toBe(t1);
    const h = f.startHandle(1);
    now += 3000;
    h.stop(); // the last handle of an expired transaction commits it (jbd2_journal_stop)
    expect(j.commitSequence).toBe(t2);
    vol.unmount();
  });

  it("fsync by tid: commits the inode's transaction once; an overwrite-only fsync still flushes", () => {
    const { rec, vol, f, j } = setup("fsync");
    const tid = setUid(f, "/f1", 11, vol);
    let n = rec.ops.length;
    f.syncTid(tid);
    expect(j.commitSequence).toBe(tid);
    expect(rec.ops.slice(n).filter((o) => o.kind === "write").length).toBeGreaterThan(0);
    n = rec.ops.length;
    f.syncTid(tid);
    expect(rec.ops.slice(n).map((o) => o.kind)).toEqual(["flush"]);
    expect(j.forceCommit(tid)).toBe(false);
    vol.unmount();
  });

  it("onCommit callbacks run once the commit block is durable", () => {
    const { rec, vol, f, j } = setup("oncommit");
    const h = f.startHandle(2);
    const inode = f.inode(vol.statSync("/f4").ino);
    inode.uid = 44;
    markInodeDirty(h, f, inode);
    const tid = h.tid;
    let seen: Op[] | undefined;
    h.onCommit(() => { seen = classify(rec.ops, j, f.sb.blockSize); });
    h.stop();
    expect(seen).toBeUndefined();
    f.commit();
    expect(seen).toBeDefined();
    const last = seen!.length - 1;
    expect(seen![last].kind).toBe("flush");
    expect(seen![last - 1]).toMatchObject({ kind: "commit", seq: tid });
    vol.unmount();
  });

  it("credits: a buffer costs one credit per transaction; exceeding them, or committing under an open handle, is refused", () => {
    const { vol, f } = setup("credits");
    const h = f.startHandle(1);
    const inode = f.inode(vol.statSync("/f1").ino);
    inode.uid = 5;
    markInodeDirty(h, f, inode);
    markInodeDirty(h, f, inode); // the same buffer again: no second credit
    expect(h.credits).toBe(0);
    // The engine is synchronous: a commit can never overlap an open handle (so no frozen copies are needed).
    expect(() => f.commit()).toThrow(/handle\(s\) open/);
    // An inode in another inode table block needs a credit the handle no longer has.
    const other = f.inode(11); // lost+found, in the first inode table block (the files are in the same one)
    const root = f.inode(2);
    expect(inodeLocation(f, root.ino).block).toBe(inodeLocation(f, other.ino).block);
    const far = [...Array(f.sb.inodesPerGroup).keys()].map((i) => i + 1).find((i) => inodeLocation(f, i).block !== inodeLocation(f, inode.ino).block)!;
    expect(() => markInodeDirty(h, f, f.inode(far))).toThrow(/credits exceeded/);
    expect(h.extend(3)).toBe(true);
    expect(h.credits).toBe(3);
    h.stop();
    expect(() => h.stop()).toThrow(/after stop/);
    vol.unmount();
  });

  it("no transaction grows past a quarter of the journal: full transactions commit at handle start, oversized handles get ENOSPC", () => {
    const { img, vol, f, j } = setup("cap", ["-b", "1024", "-J", "size=1"]);
    expect(j.maxTransactionBuffers).toBe(256);
    expect(() => f.startHandle(257)).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    const nested1 = f.startHandle(100);
    const nested2 = f.startHandle(100);
    expect(nested2.tid).toBe(nested1.tid);
    // Nested handles hold the transaction open: one more that does not fit cannot commit it first.
    expect(() => f.startHandle(100)).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    const room = 256 - j.running!.outstanding;
    expect(nested2.extend(nested2.credits + room + 1)).toBe(false); // past the cap
    expect(nested2.extend(nested2.credits + room)).toBe(true); // up to it
    nested1.stop();
    nested2.stop();
    // A handle that dirties 200 blocks leaves them in the transaction; the next 100-credit handle
    // would take it past 256, so the transaction commits first.
    const free = runSync("debugfs", ["-R", "ffb 200 4000", img]).stdout.match(/\d+/g)!.map(Number);
    expect(free.length).toBe(200);
    const big = f.startHandle(200);
    const t1 = big.tid;
    for (const b of free) {
      const bh = f.bcache.getblk(b);
      big.getCreateAccess(bh);
      bh.data.fill(0xee);
      big.dirtyMetadata(bh);
      f.bcache.brelse(bh);
    }
    big.stop();
    expect(j.running!.outstanding).toBe(200);
    const next = f.startHandle(100);
    expect(j.commitSequence).toBe(t1);
    expect(next.tid).not.toBe(t1);
    next.stop();
    // restart: the old transaction commits and the handle continues in a new one.
    const h = f.startHandle(10);
    const before = h.tid;
    h.restart(10);
    expect(j.commitSequence).toBe(before);
    expect(h.tid).not.toBe(before);
    h.stop();
    vol.unmount();
  });
});

d("data=ordered hook", () => {
  it("a commit calls the ordered-data writer with its inodes before its commit block", () => {
    const img = mkfsImage(work, "ordered", tree, []);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec, { mountOptions: "data=ordered" });
    const f = fsOf(vol);
    const j = f.journal!;
    const calls: { inodes: number[]; tid: number; opsAt: number }[] = [];
    j.writeOrderedData = (inodes, tid) => calls.push({ inodes, tid, opsAt: rec.ops.length });
    const ino = vol.statSync("/f5").ino;
    const h = f.startHandle(1);
    h.addOrderedInode!(ino);
    const inode = f.inode(ino);
    inode.uid = 55;
    markInodeDirty(h, f, inode);
    const tid = h.tid;
    h.stop();
    f.commit();
    expect(calls.map((c) => [c.inodes, c.tid])).toEqual([[[ino], tid]]);
    const ops = classify(rec.ops, j, f.sb.blockSize);
    const commit = ops.findIndex((o) => o.kind === "commit" && o.seq === tid);
    expect(calls[0].opsAt).toBeLessThan(commit);
    // A transaction without ordered inodes does not call it.
    setUid(f, "/f6", 66, vol);
    f.commit();
    expect(calls.length).toBe(1);
    vol.unmount();
  });
});

d("a failed commit aborts the journal", () => {
  it("the write error surfaces as EIO, later handles fail, and the unmount leaves needs_recovery for the next mount", () => {
    const img = mkfsImage(work, "abort", tree, []);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    setUid(f, "/f1", 1, vol);
    f.commit();
    setUid(f, "/f2", 2, vol);
    const write = rec.write.bind(rec);
    let fail = true;
    rec.write = (pos, src) => { if (fail) throw new Error("injected write failure"); write(pos, src); };
    // A second inode table block in the failing transaction, and a committed one waiting for its checkpoint.
    const h = f.startHandle(1);
    const far = f.inode(f.sb.inodesPerGroup + 1 > f.sb.inodesCount ? 1 : f.sb.inodesPerGroup + 1);
    markInodeDirty(h, f, far);
    h.stop();
    expect(() => f.commit()).toThrow(expect.objectContaining({ code: "EIO" }));
    fail = false;
    expect(() => f.startHandle(1)).toThrow(expect.objectContaining({ code: "EIO" }));
    vol.unmount();
    const file = path.join(work, "abort-after.img");
    fs.writeFileSync(file, rec.bytes);
    expect(dumpe2fsFeatures(file)).toMatch(/needs_recovery/);
    mount(file).unmount(); // our replay: the first transaction only
    fsckClean(file);
    expect(debugfsUids(file, ["/f1", "/f2"])).toEqual([1, 0]);
  });
});

function dumpe2fsFeatures(file: string): string {
  return runSync("dumpe2fs", ["-h", file]).stdout.split("\n").find((l) => l.startsWith("Filesystem features"))!;
}

d("sync and data=journal forget", () => {
  it("fs.sync() commits the running transaction and flushes", () => {
    const img = mkfsImage(work, "sync", tree, []);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    const tid = setUid(f, "/f7", 70, vol);
    f.sync();
    expect(f.journal!.commitSequence).toBe(tid);
    expect(rec.ops[rec.ops.length - 1].kind).toBe("flush");
    // A crash right after sync replays the change.
    const file = path.join(work, "sync-crash.img");
    fs.writeFileSync(file, rec.snapshot());
    mount(file).unmount();
    fsckClean(file);
    expect(debugfsUids(file, ["/f7"])).toEqual([70]);
    vol.unmount();
  });

  it.each([
    ["data=ordered", 1],
    ["data=journal", 0],
  ])("%s: a forgotten metadata block is revoked only outside data=journal (__ext4_forget)", (opt, revokes) => {
    const img = mkfsImage(work, `forget-${opt.replace("=", "-")}`, tree, []);
    const free = Number(/Free blocks found: (\d+)/.exec(runSync("debugfs", ["-R", "ffb 1 5000", img]).stdout)![1]);
    const vol = mount(img, { mountOptions: opt });
    const f = fsOf(vol);
    const h = f.startHandle(1);
    const bh = f.bcache.getblk(free);
    h.getCreateAccess(bh);
    bh.data.fill(1);
    h.dirtyMetadata(bh);
    h.stop();
    f.commit();
    const h2 = f.startHandle(1);
    h2.forget(free, true, bh);
    h2.stop();
    f.bcache.brelse(bh);
    f.commit();
    expect(f.journal!.stats.revokeBlocks).toBe(revokes);
    vol.unmount();
    fsckClean(img);
  });
});

d("committed buffers and the cache budget", () => {
  it("buffers waiting for the checkpoint never pin more than a quarter of a small cache", () => {
    const img = mkfsImage(work, "pinned", tree, ["-J", "size=64"], "256M");
    const vol = mount(img, { cacheSize: 4 << 20 });
    const f = fsOf(vol);
    const j = f.journal!;
    const limit = j.opts.maxPinnedBuffers!;
    expect(limit).toBe(256);
    const free = runSync("debugfs", ["-R", "ffb 1200 20000", img]).stdout.match(/\d+/g)!.map(Number);
    let most = 0;
    try {
      for (let i = 0; i < free.length; i += 8) {
        const h = f.startHandle(8);
        for (const b of free.slice(i, i + 8)) {
          const bh = f.bcache.getblk(b);
          h.getCreateAccess(bh);
          bh.data.fill(i & 0xff);
          h.dirtyMetadata(bh);
          f.bcache.brelse(bh);
        }
        h.stop();
        f.commit();
        most = Math.max(most, j.pinnedBuffers);
      }
      // The journal (16384 blocks) had room for all of them: only the budget made it checkpoint.
      expect(j.stats.checkpoints).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(limit + 8);
    } finally {
      vol.unmount();
    }
    fsckClean(img);
  });
});
