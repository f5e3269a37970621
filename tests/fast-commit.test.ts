// fast_commit filesystems read-write: the journal's last s_num_fc_blks
// blocks are the fast-commit area. We write full commits only (as the kernel
// does for every change fast commits cannot express), so the log must wrap
// before that area and never touch it; while the log is not empty the
// journal superblock carries the FAST_COMMIT flag, so the kernel's and
// e2fsck's recovery compute the same log end. A journal whose area still
// holds fast commits the kernel wrote after its last full commit is refused
// read-write (we don't replay them, and writing would lose them).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { dumpe2fsFields, fsckClean, fsOf, makeTree, mkfsImage, RecordingDevice } from "./helpers/jbd2.js";
import { loopMountSupport, withLoopMount } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`fast-commit: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = missing ? { ok: false as const, reason: missing } : loopMountSupport();
if (!loop.ok) console.log(`fast-commit: the kernel's view and replay are not compared: ${loop.reason}`);

let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-fc-"));
  tree = makeTree(work, 4);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const MARK = Buffer.from("FASTCOMMIT-AREA!");
/** dumpe2fs names the journal's fast-commit feature FEATURE_I5 (incompat bit 5). */
const FC_FLAG = /fast_commit|FEATURE_I5/;

/** Journal-logical block -> device block, from debugfs. */
function journalMap(img: string): number[] {
  return runSync("debugfs", ["-R", "blocks <8>", img]).stdout.split(/\s+/).filter(Boolean).map(Number);
}

/** A 1k image with a minimum journal (1024 log blocks) and a 64-block fast-commit area, the area filled with a marker. */
function fcImage(name: string): { img: string; area: number[] } {
  const img = mkfsImage(work, name, tree, ["-b", "1024", "-O", "fast_commit", "-J", "size=1"]);
  const map = journalMap(img);
  const f = dumpe2fsFields(img);
  const fc = Number(f.get("Fast commit length"));
  expect(fc).toBe(64);
  const area = map.slice(map.length - fc);
  const fd = fs.openSync(img, "r+");
  try {
    const block = Buffer.alloc(1024);
    for (let i = 0; i < 1024; i += MARK.length) MARK.copy(block, i);
    for (const b of area) fs.writeSync(fd, block, 0, 1024, b * 1024);
  } finally {
    fs.closeSync(fd);
  }
  return { img, area };
}

function areaIntact(bytes: Uint8Array, area: number[]): boolean {
  return area.every((b) => Buffer.from(bytes.subarray(b * 1024, b * 1024 + MARK.length)).equals(MARK));
}

/** fsync'd files until the journal has written `logBlocks` log blocks (a 1024-block log wraps). */
function workload(vol: ReturnType<typeof mount>, logBlocks: number): Map<string, string> {
  const want = new Map<string, string>();
  const j = fsOf(vol).journal!;
  vol.mkdirSync("/w", { recursive: true });
  for (let i = 0; j.stats.logBlocks <= logBlocks; i++) {
    const data = Buffer.alloc(3000 + (i % 7) * 1000, `${i}-`);
    const fd = vol.openSync(`/w/f${i}`, "w");
    vol.writeSync(fd, data);
    vol.fsyncSync(fd);
    vol.closeSync(fd);
    want.set(`f${i}`, createHash("sha256").update(data).digest("hex"));
  }
  return want;
}

function listing(readdir: (p: string) => string[], read: (p: string) => Buffer, root: string): Map<string, string> {
  return new Map(readdir(root).sort().map((n) => [n, createHash("sha256").update(read(`${root}/${n}`)).digest("hex")]));
}

d("fast_commit filesystems read-write", () => {
  it("the log wraps before the fast-commit area and never writes into it; e2fsck, our remount and the kernel see every file", async () => {
    const { img, area } = fcImage("wrap");
    const vol = mount(img);
    const f = fsOf(vol);
    expect(f.journal!.last).toBe(1024);
    const want = workload(vol, 2 * 1024);
    expect(want.size).toBeGreaterThan(100);
    vol.unmount();
    const bytes = fs.readFileSync(img);
    expect(areaIntact(bytes, area), "fast-commit area untouched").toBe(true);
    fsckClean(img);
    // A clean journal drops the flag, as jbd2_mark_journal_empty does.
    expect(dumpe2fsFields(img).get("Journal features")).not.toMatch(FC_FLAG);
    const back = mount(img, { readOnly: true });
    try {
      expect(listing((p) => back.readdirSync(p) as string[], (p) => back.readFileSync(p) as Buffer, "/w")).toEqual(want);
    } finally {
      back.unmount();
    }
    if (!loop.ok) return;
    const k = await withLoopMount(img, (mnt) => listing((p) => fs.readdirSync(p), (p) => fs.readFileSync(p), `${mnt}/w`), { readOnly: true });
    expect(k).toEqual(want);
  }, 120_000);

  it("crash states after the log wrapped carry the FAST_COMMIT flag; our replay and the kernel's give every fsync'd file, the area untouched", async () => {
    const { img, area } = fcImage("crash");
    const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
    const vol = mount(rec);
    const j = fsOf(vol).journal!;
    const want = workload(vol, 2 * 1024);
    expect(j.stats.logBlocks).toBeGreaterThan(2 * 1024);
    // A crash right after the last fsync returned: the log is not empty.
    const state = rec.snapshot();
    vol.unmount();
    const crashed = path.join(work, "crash-state.img");
    fs.writeFileSync(crashed, state);
    const fields = dumpe2fsFields(crashed);
    expect(fields.get("Journal features")).toMatch(FC_FLAG);
    expect(Number(fields.get("Journal start"))).toBeGreaterThan(0);
    const ours = path.join(work, "crash-ours.img");
    fs.copyFileSync(crashed, ours);
    mount(ours).unmount();
    fsckClean(ours);
    const o = mount(ours, { readOnly: true });
    try {
      expect(listing((p) => o.readdirSync(p) as string[], (p) => o.readFileSync(p) as Buffer, "/w")).toEqual(want);
    } finally {
      o.unmount();
    }
    expect(areaIntact(fs.readFileSync(ours), area)).toBe(true);
    // e2fsck's own replay of the same state.
    const e2 = path.join(work, "crash-e2fsck.img");
    fs.copyFileSync(crashed, e2);
    const r = runSync("e2fsck", ["-fy", e2], { okCodes: [0, 1] });
    expect(r.code, r.stdout + r.stderr).toBeLessThanOrEqual(1);
    fsckClean(e2);
    if (!loop.ok) return;
    const kern = path.join(work, "crash-kernel.img");
    fs.copyFileSync(crashed, kern);
    const k = await withLoopMount(kern, (mnt) => listing((p) => fs.readdirSync(p), (p) => fs.readFileSync(p), `${mnt}/w`));
    expect(k).toEqual(want);
    fsckClean(kern);
  }, 120_000);

  it("fast commits the kernel left after its last full commit: read-write is refused and nothing is written; read-only warns", async ({ skip }) => {
    if (!loop.ok) skip(`needs the kernel to write fast commits: ${loop.reason}`);
    const img = mkfsImage(work, "kernel-fc", tree, ["-b", "1024", "-O", "fast_commit"]);
    const live = path.join(work, "kernel-fc-live.img");
    // A long commit interval, fsyncs, and a copy of the image taken at once: a crash after the last fsync.
    await withLoopMount(img, (mnt) => {
      // The first fsync after mount is a full commit; the append's fsync is a fast commit.
      const py = "import os,sys\nfd=os.open(sys.argv[1],os.O_CREAT|os.O_WRONLY,0o644)\nos.write(fd,b'k'*5000)\nos.fsync(fd)\nos.write(fd,b'j'*3000)\nos.fsync(fd)\nos.close(fd)";
      const r = spawnSync("python3", ["-c", py, path.join(mnt, "fsynced")], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      fs.copyFileSync(img, live);
    }, { options: "commit=600" });
    const fields = dumpe2fsFields(live);
    if (!FC_FLAG.test(fields.get("Journal features") ?? "")) skip("the kernel made a full commit before the copy: no fast commit to test");
    const before = createHash("sha256").update(fs.readFileSync(live)).digest("hex");
    expect(() => mount(live)).toThrow(expect.objectContaining({ code: "EOPNOTSUPP", message: expect.stringMatching(/fast commits/) }));
    expect(createHash("sha256").update(fs.readFileSync(live)).digest("hex")).toBe(before);
    const ro = mount(live, { readOnly: true });
    try {
      expect(fsOf(ro).recovery?.warnings.join("\n")).toMatch(/fast-commit area .* holds records/);
    } finally {
      ro.unmount();
    }
    // The kernel replays them: then we write.
    await withLoopMount(live, () => undefined);
    const v = mount(live);
    try {
      expect(v.readFileSync("/fsynced").length).toBe(8000);
      v.writeFileSync("/after", "ours");
    } finally {
      v.unmount();
    }
    fsckClean(live);
  }, 120_000);
});
