// The kernel's view of our allocations: after we attach runs to files, the
// kernel mounts the image, sees the files' blocks, and then fills almost all
// of the free space itself (fallocate): if our bitmaps or counts called any
// of our blocks free, its allocator would hand them out again and e2fsck
// would find them claimed twice. Then we free and allocate again over the
// bitmaps the kernel left.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { groupFirstBlock } from "../host/fs/groups.js";
import { ALLOC, freeBlocks, newBlocks } from "../host/fs/mballoc.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { attachRuns, bitmapDifferences, clusterStarts, expectClean, fsOf, makeImage } from "./helpers/mballoc.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "dumpe2fs", "fallocate"], "e2fsprogs, util-linux");
const loop = loopMountSupport();
const reason = missing ?? (loop.ok ? undefined : loop.reason);
if (reason) console.log(`mballoc-kernel: skipped: ${reason}`);
const d = reason ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!reason) work = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "ext4wasm-mbkernel-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const variants: [string, string[], string, string][] = [
  ["4k", ["-b", "4096"], "", "256M"],
  ["1k-noflex", ["-b", "1024"], "^flex_bg", "64M"],
  ["bigalloc-16k", ["-b", "4096", "-C", "16384"], "bigalloc", "512M"],
];

d("the kernel and our allocator on one image", () => {
  it.each(variants)("%s: the kernel sees our files and, filling the disk, never takes their blocks; we then allocate over its bitmaps", (name, args, features, size) => {
    const img = makeImage(work, `k-${name}`, args, features, size, 2);
    let ratio = 1;
    let resvBlocks = 0;
    const sizes: number[] = [];
    const sectors: number[] = [];
    let vol = mount(img);
    try {
      const f = fsOf(vol);
      ratio = f.sb.clusterSize / f.sb.blockSize;
      resvBlocks = Math.min(Math.floor(f.sb.blocksCount / ratio / 50), 4096) * ratio;
      const h = f.startHandle(100);
      for (const k of [0, 1]) {
        const inode = f.inode(vol.statSync(`/f${k}`).ino);
        const runs = [0, 1, 2, 3].map((i) => {
          const g = Math.min(f.groups.length - 1, i + k);
          const r = newBlocks(h, f, { inode, goal: groupFirstBlock(f.sb, g) + 999 * ratio * (i + 1), len: (50 + 400 * i) * ratio, flags: ALLOC.DATA });
          return { pblk: r.pblk, len: r.clusters * ratio };
        });
        attachRuns(h, f, inode, runs);
        sizes.push(inode.size);
        sectors.push(inode.blocks512);
      }
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    withLoopMountSync(img, (mnt) => {
      for (const k of [0, 1]) {
        const st = fs.statSync(path.join(mnt, `f${k}`));
        expect(st.size).toBe(sizes[k]);
        expect(st.blocks).toBe(sectors[k]);
      }
      const sf = fs.statfsSync(mnt);
      // Nearly all that root may take (s_resv_clusters stay back), in one fallocate.
      const bytes = Math.max(0, (sf.bfree - resvBlocks - 256 * ratio) * sf.bsize);
      runSync("fallocate", ["-l", String(bytes), path.join(mnt, "fill")]);
    });
    expectClean(img);

    // Ours again, over the kernel's bitmaps: free f0's runs, allocate, and e2fsck names exactly what we took.
    vol = mount(img);
    const took: number[] = [];
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const inode = f.inode(vol.statSync("/fill").ino);
      expect(inode.blocks512).toBeGreaterThan(0);
      // The kernel did fill the disk: what is left is about the reserve.
      expect(f.sb.freeBlocksCount).toBeLessThan(resvBlocks + 1024 * ratio);
      for (let i = 0; i < 40; i++) {
        try {
          const r = newBlocks(h, f, { goal: f.sb.firstDataBlock + i * 1000, len: 3 * ratio, flags: ALLOC.NOFAIL });
          took.push(...clusterStarts(r.pblk, r.clusters, ratio));
        } catch (e) {
          expect((e as { code: string }).code).toBe("ENOSPC");
          break;
        }
      }
      expect(took.length).toBeGreaterThan(0);
      // Free a few of the kernel's own blocks of /fill's first extent (as truncate would, minus the extent edit: e2fsck then reports them as +).
      const m = f.mapBlocks(inode, 0, 1);
      freeBlocks(h, f, undefined, m.pblk, ratio);
      h.stop();
      took.push(-m.pblk);
    } finally {
      vol.unmount();
    }
    const diff = bitmapDifferences(img, ratio);
    const freedKernel = took.filter((x) => x < 0).map((x) => -x);
    expect([...diff.minus].sort((a, b) => a - b)).toEqual(took.filter((x) => x >= 0).sort((a, b) => a - b));
    expect([...diff.plus]).toEqual(freedKernel);
  });
});
