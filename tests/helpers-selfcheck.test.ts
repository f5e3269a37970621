// Checks the test-image machinery itself, without the engine: every variant
// image is e2fsck-clean and has the on-disk shapes it exists for, the kernel
// reads mkfs images the way the manifests say, and the kernel-written and
// crashed images are what read-images.test.ts assumes.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { generateTree, TIME_PROBE, PROBE_MTIME, touchArgToNs, type TreeManifest } from "./helpers/tree.js";
import { VARIANTS, buildImageWithManifest, debugfs, fsckClean, superInfo, seededUuid, treeOptionsFor, type ImageManifest, type Variant } from "./helpers/images.js";
import { CRASH_VARIANTS, KERNEL_VARIANTS, crashedImageCopy, kernelTreeOptions, kernelWrittenImage, loopMountSupport, withLoopMount } from "./helpers/kernel.js";
import { compareVolumeWithTree, hostDirVolume } from "./helpers/compare.js";
import { EXACT_TIMES } from "./helpers/times.js";
import { attrToolsMissing, run } from "./helpers/exec.js";

/** The source trees carry xattrs: without the attr tools this file skips, saying why. */
const noAttr = attrToolsMissing() !== null;

const SEED = 0x5eed;
let work = "";
const trees = new Map<number, { dir: string; manifest: TreeManifest }>();
const builds = new Map<string, Promise<ImageManifest>>();

function treeFor(v: Variant): { dir: string; manifest: TreeManifest } {
  return treeForLimits(treeOptionsFor(v));
}

function treeForLimits(opts: { maxSymlinkTarget?: number; bigXattrSize?: number }): { dir: string; manifest: TreeManifest } {
  let t = trees.get(opts.maxSymlinkTarget!);
  if (!t) {
    const dir = path.join(work, `tree-${opts.maxSymlinkTarget}`);
    t = { dir, manifest: generateTree(dir, { seed: SEED, scale: "full", ...opts }) };
    trees.set(opts.maxSymlinkTarget!, t);
  }
  return t;
}

/** Extent tree depth as `debugfs ex` prints it ("0/ 2 ..." on the first row). */
async function extentDepth(image: string, p: string): Promise<number> {
  const out = await debugfs(image, `ex ${p}`);
  const m = out.match(/^\s*0\/\s*(\d+)\s/m);
  if (!m) throw new Error(`no extent tree for ${p}:\n${out}`);
  return Number(m[1]);
}

const loop = loopMountSupport();
if (!loop.ok) console.warn(`[helpers-selfcheck] loop-mount checks skipped: ${loop.reason}`);

beforeAll(() => {
  if (noAttr) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-selfcheck-"));
  for (const v of VARIANTS) {
    const p = buildImageWithManifest(v, treeFor(v).dir, path.join(work, "images"));
    p.catch(() => undefined); // awaited (and reported) by the variant's own test
    builds.set(v.name, p);
  }
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.skipIf(noAttr)("tree generator", () => {
  it("covers every shape the readers need", async () => {
    // Reading the tree moves atimes: wait until no build is snapshotting it.
    await Promise.allSettled(builds.values());
    const { dir, manifest: m } = treeFor(VARIANTS[0]!);
    for (const tag of ["fragmented400", "fragmented2000", "triple-indirect", "htree-dir", "deep", "fast-symlink", "slow-symlink", "dangling-symlink",
      "dir-symlink", "fifo", "device", "xattr-big", "empty", "empty-dir", "hole-start", "hole-middle", "hole-end", "all-hole", "block-multiple", "block-multiple-pm1", "large"]) {
      expect(m.coverage[tag], tag).toBeGreaterThanOrEqual(1);
    }
    expect(m.coverage["non-utf8-name"]).toBeGreaterThan(100);
    expect(m.coverage["long-name"]).toBeGreaterThanOrEqual(4);
    expect(m.coverage["hardlink"]).toBeGreaterThanOrEqual(5);
    expect(m.coverage["xattr"]).toBeGreaterThanOrEqual(5);
    for (const bit of ["setuid", "setgid", "sticky"]) expect(m.coverage[bit], bit).toBeGreaterThan(2);
    expect(m.totals.files).toBeGreaterThan(3000);
    expect(m.totals.dataBytes).toBeLessThan(48 << 20);
    expect(fs.readdirSync(path.join(dir, "bigdir")).length).toBe(3000);
    const slowMax = m.entries.find((e) => e.key === "links/slowmax")!;
    expect(fs.readlinkSync(path.join(dir, "links/slowmax")).length).toBe(slowMax.size);
    expect(slowMax.size).toBe(4000);
    expect(fs.lstatSync(path.join(dir, TIME_PROBE), { bigint: true }).mtimeNs).toBe(touchArgToNs(PROBE_MTIME));
    // Non-UTF-8 names exist as raw bytes on the host.
    expect(fs.readdirSync(path.join(dir, "names"), { encoding: "buffer" }).some((n) => n.equals(Buffer.from([0xff, 0xfe])))).toBe(true);
  });

  it("is deterministic and has a quick small scale", () => {
    const a = generateTree(path.join(work, "small-a"), { seed: 7, scale: "small" });
    const b = generateTree(path.join(work, "small-b"), { seed: 7, scale: "small" });
    expect(a.entries.map((e) => [e.key, e.size])).toEqual(b.entries.map((e) => [e.key, e.size]));
    expect(fs.readFileSync(path.join(work, "small-a/files/large-1m")).equals(fs.readFileSync(path.join(work, "small-b/files/large-1m")))).toBe(true);
    expect(a.coverage["fragmented400"]).toBe(1);
    expect(a.coverage["fragmented2000"]).toBeUndefined();
    expect(a.totals.files).toBeLessThan(500);
  });
});

describe.skipIf(noAttr).each(VARIANTS.map((v) => [v.name, v] as const))("variant %s", (name, v) => {
  it("is e2fsck-clean and has the on-disk shapes it exists for", async () => {
    const m = await builds.get(name)!;
    const img = m.image;
    await fsckClean(img);
    const sb = await superInfo(img);
    for (const f of v.expect.features) expect(sb.features, f).toContain(f);
    for (const f of v.expect.absent ?? []) expect(sb.features, f).not.toContain(f);
    expect(sb.blockSize).toBe(v.blockSize);
    if (v.expect.inodeSize) expect(sb.inodeSize).toBe(v.expect.inodeSize);
    expect(fs.existsSync(img + ".manifest.json")).toBe(true);
    expect(m.times.size).toBeGreaterThan(3000);
    const extents = sb.features.includes("extent");

    if (extents && v.blockSize <= 4096) {
      expect(await extentDepth(img, "/fragmented400")).toBeGreaterThanOrEqual(1);
      expect(await extentDepth(img, "/fragmented2000")).toBe(2);
    }
    if (v.expect.tind) expect(await debugfs(img, "stat /triple-indirect")).toMatch(/\(TIND\):\d+/);
    if (!extents) expect(await debugfs(img, "stat /triple-indirect")).toMatch(/\(DIND\):\d+/);
    if (sb.features.includes("inline_data")) {
      expect(await debugfs(img, "stat /files/size-59")).toMatch(/Size of inline data: 60/);
      expect(await debugfs(img, "stat /xattr/inline-small")).toMatch(/Size of inline data/);
    }
    if (v.unwritten) {
      expect(m.unwritten).not.toBeNull();
      expect(await debugfs(img, "ex /unwritten/prealloc")).toMatch(/Uninit/);
    }
    if (v.expect.eaInode) {
      // 3000 bytes cannot sit in a 1k/2k block: only an EA inode holds it.
      const out = path.join(work, `${name}-big.xattr`);
      await debugfs(img, `ea_get -f ${out} /xattr/big user.big`);
      expect(fs.statSync(out).size).toBe(3000);
    }
    const htree = await debugfs(img, "htree_dump /bigdir");
    if (v.reindex) {
      expect(htree).toMatch(/Root node dump/);
      const hv = Number(htree.match(/Hash Version: (\d+)/)![1]);
      expect(["legacy", "half_md4", "tea"][hv]).toBe(sb.hash);
    } else {
      expect(htree).toMatch(/Not a hash-indexed directory/);
    }
    if (v.expect.hash) expect(sb.hash).toBe(v.expect.hash);
    if (v.expect.unsignedHash !== undefined) {
      expect(sb.flags).toContain(v.expect.unsignedHash ? "unsigned_directory_hash" : "signed_directory_hash");
      expect(m.unsignedHash).toBe(v.expect.unsignedHash);
    }
    if (v.expect.metaGroups) {
      const num = (f: string) => Number(sb.raw.match(new RegExp(`^${f}:\\s*(\\d+)`, "m"))![1]);
      const groups = Math.ceil(num("Block count") / num("Blocks per group"));
      const perBlock = v.blockSize / num("Group descriptor size");
      expect(Math.ceil(groups / perBlock)).toBeGreaterThanOrEqual(v.expect.metaGroups);
    }
    if (v.changeUuid) {
      expect(sb.raw).toMatch(/^Checksum seed:/m);
      expect(sb.raw).toMatch(new RegExp(`^Filesystem UUID:\\s*${seededUuid(name, "uuid2")}`, "m"));
    }
    // e2fsprogs 1.47.0 keeps whole seconds in 32 bits; a newer one may keep more.
    expect(m.timePolicy.range).toMatch(/^(wrap32|clamp32|full)$/);
  });
});

describe.skipIf(!loop.ok || noAttr)("kernel", () => {
  // The kernel's view of mkfs images must match the tree under the manifest's
  // time policy: this checks compare.ts and the findings in images.ts. (64k
  // blocks do not mount on 4k pages.)
  it.each(VARIANTS.filter((v) => v.blockSize <= 4096).map((v) => v.name))("reads the %s mkfs image as the manifest says", async (name) => {
    const v = VARIANTS.find((x) => x.name === name)!;
    const m = await builds.get(name)!;
    const counts = await withLoopMount(m.image, (mnt) => compareVolumeWithTree(hostDirVolume(mnt), treeFor(v).dir, { timePolicy: m.timePolicy, times: m.times }), { readOnly: true, options: "noatime" });
    expect(counts.files).toBeGreaterThan(3000);
    expect(counts.symlinks).toBeGreaterThan(50);
    expect(counts.hardlinks).toBeGreaterThanOrEqual(3);
    expect(counts.xattrs).toBeGreaterThanOrEqual(15);
    expect(counts.bytes).toBeGreaterThan(100 << 20);
  });

  it.each(KERNEL_VARIANTS.map((k) => [k.name, k] as const))("%s: clean, kernel-made shapes, remount equals the truth", async (name, k) => {
    const tree = treeForLimits(kernelTreeOptions(k));
    const ki = await kernelWrittenImage(path.join(work, name), tree.dir, k);
    const img = ki.image;
    await fsckClean(img);
    const sb = await superInfo(img);
    expect(sb.blockSize).toBe(k.blockSize ?? 4096);
    expect(await debugfs(img, "ex /kernel-extras/fallocated")).toMatch(/Uninit/);
    expect(await debugfs(img, "stat /kernel-extras/beyond-eof")).toMatch(/Size: 10000\b/);
    expect(await debugfs(img, "ex /kernel-extras/beyond-eof")).toMatch(/Uninit/);
    expect((await debugfs(img, "ex /kernel-extras/append-a")).split("\n").length).toBeGreaterThan(8);
    expect(await debugfs(img, "htree_dump /bigdir")).toMatch(/Root node dump/);
    expect(await extentDepth(img, "/fragmented2000")).toBeGreaterThanOrEqual(k.blockSize === undefined && !k.features ? 2 : 1);
    if (k.features?.includes("inline_data")) expect(await debugfs(img, "stat /kernel-extras/inline-sized")).toMatch(/Size of inline data/);
    const counts = await withLoopMount(img, (mnt) => compareVolumeWithTree(hostDirVolume(mnt), ki.truthDir, { timePolicy: EXACT_TIMES, times: ki.times, rootMeta: true }), { readOnly: true, options: "noatime" });
    expect(counts.files).toBeGreaterThan(3000);
  });

  it.each(CRASH_VARIANTS.map((k) => [k.name, k] as const))("%s: needs recovery, lacks journal-only changes at home, replays to the truth", async (name, k) => {
    const tree = treeForLimits(kernelTreeOptions(k));
    const c = await crashedImageCopy(path.join(work, name), tree.dir, k);
    const sb = await superInfo(c.image);
    expect(sb.features).toContain("needs_recovery");
    // Without replay the post-sync changes are not in their home blocks.
    expect(await debugfs(c.image, "stat /post-sync/new-file")).toMatch(/not found/i);
    // Replaying a scratch copy gives a clean fs equal to the truth.
    const scratch = path.join(work, name, "replayed.img");
    await run("cp", ["--sparse=always", c.image, scratch]);
    await run("e2fsck", ["-fy", scratch], { okCodes: [0, 1] });
    await fsckClean(scratch);
    expect(await debugfs(scratch, "stat /post-sync/new-file")).toMatch(/Size: 20000\b/);
    const counts = await withLoopMount(scratch, (mnt) => compareVolumeWithTree(hostDirVolume(mnt), c.truthDir, { timePolicy: EXACT_TIMES, times: c.times, rootMeta: true }), { readOnly: true, options: "noatime" });
    expect(counts.files).toBeGreaterThan(3000);
  });
});
