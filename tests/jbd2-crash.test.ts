// Crash states of the jbd2 writer, judged by the kernel and e2fsprogs: a
// recording device logs every write and flush of a workload of inode changes
// (uids of the files of a mkfs -d image, one transaction per change), and the
// image is rebuilt as a crash would leave it at chosen moments: transactions
// committed but never checkpointed, a transaction running but not committed,
// a commit whose commit block never reached the device. The kernel (loop
// mount) and our own mount replay each; both must show exactly the committed
// changes, e2fsck must be clean, and the two replays must be identical in
// every block outside the journal and the superblock.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools } from "./helpers/exec.js";
import {
  debugfsUids, differingBlocks, fsckClean, fsOf, journalDeviceBlocks, kernelReplay, makeTree, mkfsImage, RecordingDevice,
} from "./helpers/jbd2.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`jbd2-crash: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const FILES = 20;
let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-jbd2-crash-"));
  tree = makeTree(work, FILES);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const paths = Array.from({ length: FILES }, (_, i) => `/f${i + 1}`);

/** Sets the uid of /f(k % FILES + 1) in one handle. */
function setUid(f: Ext4, ino: number, uid: number): void {
  const h = f.startHandle(2);
  const inode = f.inode(ino);
  inode.uid = uid;
  markInodeDirty(h, f, inode);
  h.stop();
}

interface Replayed { ours: Uint8Array; kernel: Uint8Array | undefined }

/**
 * Writes a crash state to two files, replays one with the kernel and one with
 * our mount, checks e2fsck and the uids debugfs sees in both, and compares them.
 */
function judge(name: string, state: Uint8Array, expectUids: number[], bs: number, mountOptions?: string): Replayed {
  const ours = path.join(work, `${name}-ours.img`);
  const kern = path.join(work, `${name}-kernel.img`);
  fs.writeFileSync(ours, state);
  fs.writeFileSync(kern, state);
  mount(ours, { mountOptions }).unmount();
  fsckClean(ours);
  expect(debugfsUids(ours, paths), `${name}: our replay`).toEqual(expectUids);
  const out: Replayed = { ours: fs.readFileSync(ours), kernel: undefined };
  if (kernelReplay(kern, `jbd2-crash ${name}`)) {
    fsckClean(kern);
    expect(debugfsUids(kern, paths), `${name}: kernel replay`).toEqual(expectUids);
    out.kernel = fs.readFileSync(kern);
    const skip = journalDeviceBlocks(ours);
    skip.add(bs === 1024 ? 1 : 0); // the superblock: mount times, counts
    const diff = differingBlocks(out.ours, out.kernel, bs).filter((b) => !skip.has(b));
    expect(diff, `${name}: blocks where our replay and the kernel's differ`).toEqual([]);
  }
  return out;
}

const variants: [string, string[], string | undefined][] = [
  ["4k-csum-v3", [], undefined],
  ["1k-csum-32bit", ["-b", "1024", "-O", "^64bit"], undefined],
  ["4k-nocsum-v1", ["-O", "^metadata_csum"], "journal_checksum"],
  ["1k-nocsum-32bit-async", ["-b", "1024", "-O", "^metadata_csum,^64bit"], "journal_async_commit"],
  ["2k-nocsum-none", ["-b", "2048", "-O", "^metadata_csum,uninit_bg"], undefined],
];

d("crash states replay to exactly the committed changes", () => {
  it.each(variants)("%s", (name, args, opts) => {
    const img = mkfsImage(work, name, tree, args);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec, { mountOptions: opts });
    const f = fsOf(vol);
    const bs = f.sb.blockSize;
    const inos = paths.map((p) => vol.statSync(p).ino);
    const uids = paths.map(() => 0);
    // 60 committed transactions, never checkpointed (the journal has room).
    for (let k = 0; k < 60; k++) {
      setUid(f, inos[k % FILES], 1000 + k);
      f.commit();
      uids[k % FILES] = 1000 + k;
    }
    expect(f.journal!.stats.checkpoints).toBe(0);
    const committed = rec.snapshot();
    // A transaction whose commit block never reached the device.
    const opsBefore = rec.ops.length;
    setUid(f, inos[0], 5000);
    setUid(f, inos[1], 5001);
    f.commit();
    const lastWrite = rec.ops.map((o, i) => (o.kind === "write" ? i : -1)).filter((i) => i >= opsBefore).pop()!;
    const torn = rec.stateAt(lastWrite);
    const withTorn = [...uids];
    withTorn[0] = 5000;
    withTorn[1] = 5001;
    // Changes in the running transaction, never committed.
    setUid(f, inos[2], 6000);
    const running = rec.snapshot();

    judge(`${name}-committed`, committed, uids, bs, opts);
    judge(`${name}-torn-commit`, torn, uids, bs, opts);
    judge(`${name}-running`, running, withTorn, bs, opts);
  });
});

d("a crash after any prefix of the recorded writes", () => {
  it("replays to exactly the last transaction whose commit block is in the prefix (1k, minimum journal, laps and checkpoints)", () => {
    const img = mkfsImage(work, "prefix", tree, ["-b", "1024", "-J", "size=1"]);
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const f = fsOf(vol);
    const j = f.journal!;
    const inos = paths.map((p) => vol.statSync(p).ino);
    const uids = paths.map(() => 0);
    // After each commit: the index of its commit block write and the uids it made durable.
    const commits: { at: number; uids: number[] }[] = [];
    const start = rec.ops.length;
    for (let k = 0; k < 700; k++) {
      setUid(f, inos[k % FILES], 20000 + k);
      uids[k % FILES] = 20000 + k;
      if (k % 3 === 2) continue; // some transactions hold two handles
      f.commit();
      let w = rec.ops.length - 1;
      while (rec.ops[w].kind !== "write") w--;
      commits.push({ at: w, uids: [...uids] });
    }
    expect(j.stats.checkpoints).toBeGreaterThan(0);
    const end = rec.ops.length;
    const rand = (() => { let x = 12345; return () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31; })();
    const points = new Set<number>();
    for (let i = 0; i < 50; i++) points.add(start + Math.floor(rand() * (end - start)));
    // Around every journal superblock write (tail moves): just before and just after.
    const jsb = j.deviceBlock(0) * 1024;
    rec.ops.forEach((o, i) => { if (i >= start && o.kind === "write" && o.pos === jsb && points.size < 90) { points.add(i); points.add(i + 1); } });
    let n = 0;
    for (const p of [...points].sort((a, b) => a - b)) {
      const state = rec.stateAt(p);
      const last = commits.filter((c) => c.at < p).pop();
      const want = last ? last.uids : paths.map(() => 0);
      const bytes = state.slice();
      mount(bytes).unmount();
      const check = mount(bytes, { readOnly: true });
      try {
        const cf = fsOf(check);
        expect(inos.map((i) => cf.inode(i).uid), `crash after op ${p}`).toEqual(want);
      } finally {
        check.unmount();
      }
      if (n++ % 10 === 0) {
        const file = path.join(work, `prefix-${p}.img`);
        fs.writeFileSync(file, bytes);
        fsckClean(file);
        fs.rmSync(file);
      }
    }
    vol.unmount();
  }, 240_000);
});
