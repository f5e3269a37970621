// The engine reads every image variant back to exactly the tree it was made
// from: mkfs -d images of each on-disk variant, images the kernel wrote, and
// crashed copies whose journal must be replayed. Images are made at run time
// (tests/helpers); helpers-selfcheck.test.ts vouches for them without the engine.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mount } from "../host/index.js";
import { generateTree } from "./helpers/tree.js";
import { VARIANTS, buildImageWithManifest, treeOptionsFor } from "./helpers/images.js";
import { CRASH_VARIANTS, KERNEL_VARIANTS, crashedImageCopy, kernelTreeOptions, kernelWrittenImage, loopMountSupport, withLoopMountSync, type CrashedImage, type KernelImageOptions } from "./helpers/kernel.js";
import { spawnSync } from "node:child_process";
import { hashHostFile } from "./helpers/hostfs.js";
import { compareVolumeWithTree, hostDirVolume, type CompareCounts } from "./helpers/compare.js";
import { EXACT_TIMES } from "./helpers/times.js";
import { attrToolsMissing } from "./helpers/exec.js";

/** The source trees carry xattrs: without the attr tools this file skips, saying why. */
const noAttr = attrToolsMissing() !== null;

const SEED = 0xe474;
let work = "";
const trees = new Map<number, string>();

/** One tree per symlink-length limit (1k/2k blocks need targets < 1024), made once. */
function tree(limits: { maxSymlinkTarget?: number; bigXattrSize?: number }): string {
  const key = limits.maxSymlinkTarget ?? 4000;
  let dir = trees.get(key);
  if (!dir) {
    dir = path.join(work, `tree-${key}`);
    generateTree(dir, { seed: SEED, scale: "full", ...limits });
    trees.set(key, dir);
  }
  return dir;
}

beforeAll(() => {
  if (noAttr) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-read-"));
  tree({ maxSymlinkTarget: 4000 });
  tree({ maxSymlinkTarget: 1023 });
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function expectMany(c: CompareCounts): void {
  expect(c.files).toBeGreaterThan(3000);
  expect(c.dirs).toBeGreaterThan(50);
  expect(c.symlinks).toBeGreaterThan(50);
  expect(c.hardlinks).toBeGreaterThanOrEqual(3);
  expect(c.xattrs).toBeGreaterThanOrEqual(15);
  expect(c.bytes).toBeGreaterThan(20 << 20);
}

describe.skipIf(noAttr).each(VARIANTS.map((v) => [v.name, v] as const))("mkfs image %s", (_name, v) => {
  it("reads back the tree it was made from", async () => {
    const src = tree(treeOptionsFor(v));
    const m = await buildImageWithManifest(v, src, path.join(work, "images"));
    const vol = mount(m.image, { readOnly: true });
    try {
      // mkfs -d keeps what the manifest's timePolicy says; atimes as mkfs saw them.
      expectMany(compareVolumeWithTree(vol, src, { timePolicy: m.timePolicy, times: m.times }));
    } finally {
      vol.unmount();
    }
  });
});

const loop = loopMountSupport();
if (!loop.ok) console.warn(`[read-images] kernel-written and crashed images skipped: ${loop.reason}`);

describe.skipIf(!loop.ok || noAttr)("kernel-written image", () => {
  it.each(KERNEL_VARIANTS.map((k) => [k.name, k] as const))("%s reads back as the kernel shows it", async (name, k) => {
    const ki = await kernelWrittenImage(path.join(work, name), tree(kernelTreeOptions(k)), k);
    const vol = mount(ki.image, { readOnly: true });
    try {
      expectMany(compareVolumeWithTree(vol, ki.truthDir, { timePolicy: EXACT_TIMES, times: ki.times, rootMeta: true }));
    } finally {
      vol.unmount();
    }
  });
});

const crashedImages = new Map<string, Promise<CrashedImage>>();
function crashed(name: string, k: KernelImageOptions): Promise<CrashedImage> {
  let p = crashedImages.get(name);
  if (!p) crashedImages.set(name, (p = crashedImageCopy(path.join(work, name), tree(kernelTreeOptions(k)), k)));
  return p;
}

describe.skipIf(!loop.ok || noAttr)("crashed image copy", () => {
  it.each(CRASH_VARIANTS.map((k) => [k.name, k] as const))("%s: read-only mount replays the journal in memory", async (name, k) => {
    const c = await crashed(name, k);
    const before = hashHostFile(Buffer.from(c.image)).sha256;
    const vol = mount(c.image, { readOnly: true });
    try {
      expectMany(compareVolumeWithTree(vol, c.truthDir, { timePolicy: EXACT_TIMES, times: c.times, rootMeta: true }));
    } finally {
      vol.unmount();
    }
    // readOnly never writes the image, replay included.
    expect(hashHostFile(Buffer.from(c.image)).sha256).toBe(before);
  });

  it.each(CRASH_VARIANTS.map((k) => [k.name, k] as const))("%s: noload shows the pre-crash home blocks", async (name, k) => {
    const c = await crashed(name, k);
    const vol = mount(c.image, { readOnly: true, mountOptions: "noload" });
    try {
      // Created after the last full sync: only the journal knows it.
      expect(() => vol.lstatSync("/post-sync/new-file")).toThrow(/ENOENT/);
      expect(vol.lstatSync("/bigdir").isDirectory()).toBe(true);
    } finally {
      vol.unmount();
    }
  });
});

describe.skipIf(!loop.ok || noAttr)("crashed image, read-write mount", () => {
  it.each(CRASH_VARIANTS.map((k) => [k.name, k] as const))("%s: replays to disk; e2fsck clean; the kernel sees the truth", async (name, k) => {
    const c = await crashed(name, k);
    const copy = path.join(work, `${name}-rw.img`);
    fs.copyFileSync(c.image, copy);
    const vol = mount(copy);
    try {
      expect(vol.fs.recovery?.mode).toBe("disk");
      expect(vol.fs.recovery?.transactions).toBeGreaterThan(0);
    } finally {
      vol.unmount();
    }
    const fsck = spawnSync("e2fsck", ["-fn", copy], { encoding: "utf8" });
    expect(fsck.stdout + fsck.stderr).not.toMatch(/recovery|journal/i);
    expect(fsck.status, fsck.stdout).toBe(0);
    // Replayed: a plain mount needs no recovery and reads the truth, and so does the kernel.
    const again = mount(copy, { readOnly: true });
    try {
      expect(again.fs.recovery?.needed).toBe(false);
      expectMany(compareVolumeWithTree(again, c.truthDir, { timePolicy: EXACT_TIMES, times: c.times, rootMeta: true }));
    } finally {
      again.unmount();
    }
    withLoopMountSync(copy, (mnt) => {
      expectMany(compareVolumeWithTree(hostDirVolume(mnt), c.truthDir, { timePolicy: EXACT_TIMES, times: c.times, rootMeta: true }));
    }, { readOnly: true });
  });
});
