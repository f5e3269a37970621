// ext4Truncate (host/fs/truncate.ts): files at extent depths 0 to 3, block-
// mapped files through triple indirect, inline-data files and bigalloc
// files truncated step by step to unaligned sizes. After each round e2fsck
// -fn is clean, our reader and the kernel read the prefix that is left, and
// once everything is truncated the free block count is back where it began.
// On a journaled image with a small journal a long truncate spans several
// transactions (the handle restarts between steps) and stays e2fsck-clean.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import type { Volume } from "../host/index.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { GET_BLOCKS } from "../host/fs/map-blocks.js";
import { ext4Truncate } from "../host/fs/truncate.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import {
  expectedBytes, expectFsckClean, FileModel, freeBlocksOf, fsOf, makeImage, mapRange, modelRemove, treeDepth, withRw,
} from "./helpers/extent-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`truncate: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`truncate: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-truncate-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

/** A file under test: its block model and its byte size (possibly unaligned). */
interface Sized { m: FileModel; bytes: number }

function inodeByName(vol: Volume, name: string): Ext4Inode {
  return fsOf(vol).iget(Number(vol.statSync(`/${name}`).ino));
}

/** i_size set as setattr's truncate_down does, then ext4Truncate; the model follows. */
function truncateTo(f: Ext4, vol: Volume, s: Sized, bytes: number): void {
  const inode = inodeByName(vol, s.m.name);
  try {
    inode.size = bytes;
    ext4Truncate(f, inode);
    expect(inode.disksize).toBe(bytes);
  } finally {
    f.iput(inode);
  }
  const bs = f.sb.blockSize;
  modelRemove(s.m, Math.ceil(bytes / bs), Infinity);
  s.m.sizeBlocks = Math.ceil(bytes / bs);
  s.bytes = bytes;
}

/** Our reader and (where loop mounts work) the kernel read exactly the prefix the model keeps. */
function checkPrefix(img: string, bs: number, files: Sized[], kernel: boolean): void {
  const want = (s: Sized) => Buffer.from(expectedBytes(bs, s.m).subarray(0, s.bytes));
  const vol = mount(img, { readOnly: true });
  try {
    for (const s of files) {
      const got = vol.readFileSync(`/${s.m.name}`) as Buffer;
      expect(got.length, `${s.m.name} size`).toBe(s.bytes);
      expect(got.equals(want(s)), `${s.m.name}: our reader`).toBe(true);
    }
  } finally {
    vol.unmount();
  }
  if (!kernel || !loop.ok) return;
  withLoopMountSync(img, (mnt) => {
    for (const s of files) expect(fs.readFileSync(path.join(mnt, s.m.name)).equals(want(s)), `${s.m.name}: the kernel`).toBe(true);
  }, { readOnly: true });
}

/** Every `stride`th block of [0, n * stride) of each file allocated: no extent merges, so n extents. */
function build(img: string, files: { s: Sized; n: number; stride: number }[]): { bs: number; depths: number[] } {
  let bs = 0;
  const depths: number[] = [];
  withRw(img, (f, h, vol) => {
    bs = f.sb.blockSize;
    for (const { s, n, stride } of files) {
      const inode = inodeByName(vol, s.m.name);
      try {
        for (let i = 0; i < n; i++) mapRange(h, f, inode, s.m, i * stride, 1, GET_BLOCKS.CREATE);
        s.bytes = s.m.sizeBlocks * bs;
        depths.push(treeDepth(inode));
      } finally {
        f.iput(inode);
      }
    }
  });
  return { bs, depths };
}

const extentLayouts: [string, string[], string, number[]][] = [
  // name, mkfs args, size, extents per file (depth 0, 1, 2, 3 on 1k blocks)
  ["1k", ["-O", "^has_journal", "-b", "1024"], "128M", [3, 60, 800, 4 * 84 * 84 + 50]],
  ["4k", ["-O", "^has_journal", "-b", "4096"], "256M", [4, 200, 2000]],
  ["bigalloc", ["-O", "^has_journal,bigalloc", "-b", "1024", "-C", "4096"], "256M", [3, 60, 800]],
];

d("ext4Truncate of extent files", () => {
  it.each(extentLayouts)("%s: depths 0.. truncated to unaligned sizes in steps, e2fsck clean and the prefix read back each time; the free count comes back exactly", (name, args, size, counts) => {
    const names = counts.map((_, i) => `d${i}`);
    const img = makeImage(work, `ext-${name}`, args, size, names);
    const free0 = freeBlocksOf(img);
    const files: Sized[] = names.map((n, i) => ({ m: new FileModel(n, 40 + i), bytes: 0 }));
    // Stride 2 leaves a hole between blocks; with bigalloc a stride of 3 keeps clusters shared by kept and dropped blocks.
    const stride = name === "bigalloc" ? 3 : 2;
    const { bs, depths } = build(img, files.map((s, i) => ({ s, n: counts[i], stride })));
    console.log(`${name}: extent depths ${depths.join(", ")}`);
    expect(depths).toEqual(counts.map((_, i) => i));
    expectFsckClean(img, `${name}: built`);
    // Each round cuts every file at a fraction of its length, mid-block.
    for (const frac of [0.9, 0.5, 0.13, 0.001, 0]) {
      const vol = mount(img);
      try {
        const f = fsOf(vol);
        for (const s of files) {
          const blocks = Math.floor(s.m.sizeBlocks * frac);
          const bytes = frac === 0 ? 0 : blocks * bs + 123;
          truncateTo(f, vol, s, Math.min(bytes, s.bytes));
        }
      } finally {
        vol.unmount();
      }
      expectFsckClean(img, `${name}: truncated to ${frac}`);
      checkPrefix(img, bs, files, frac === 0.5 || frac === 0);
    }
    const vol = mount(img, { readOnly: true });
    try {
      for (const s of files) expect(treeDepth(fsOf(vol).inode(Number(vol.statSync(`/${s.m.name}`).ino)))).toBe(0);
    } finally {
      vol.unmount();
    }
    expect(freeBlocksOf(img)).toBe(free0);
  });

  it("1k: a truncate to the same size frees blocks preallocated past EOF (as ext4_truncate does)", () => {
    const img = makeImage(work, "prealloc", ["-O", "^has_journal", "-b", "1024"], "32M", ["p"]);
    const free0 = freeBlocksOf(img);
    const s: Sized = { m: new FileModel("p", 60), bytes: 0 };
    withRw(img, (f, h, vol) => {
      const inode = inodeByName(vol, "p");
      try {
        mapRange(h, f, inode, s.m, 0, 10, GET_BLOCKS.CREATE);
        s.bytes = 10 * 1024 - 100;
        inode.size = s.bytes;
        inode.disksize = s.bytes;
        // Unwritten blocks past EOF, as fallocate KEEP_SIZE leaves them.
        mapRange(h, f, inode, s.m, 10, 30, GET_BLOCKS.CREATE_UNWRIT_EXT);
        inode.size = s.bytes;
        inode.disksize = s.bytes;
      } finally {
        f.iput(inode);
      }
    });
    expect(freeBlocksOf(img)).toBe(free0 - 40);
    const vol = mount(img);
    try {
      truncateTo(fsOf(vol), vol, s, s.bytes);
    } finally {
      vol.unmount();
    }
    expect(freeBlocksOf(img)).toBe(free0 - 10);
    expectFsckClean(img, "truncate to the same size");
    checkPrefix(img, 1024, [s], false);
  });
});

d("ext4Truncate of block-mapped files", () => {
  it("1k ext3: a file through triple indirect truncated into triple, double, single, direct and to nothing", () => {
    const img = makeImage(work, "ind", ["-t", "ext3", "-O", "^has_journal", "-b", "1024"], "96M", ["a"]);
    const free0 = freeBlocksOf(img);
    const per = 256;
    const single = 12;
    const double = 12 + per;
    const triple = 12 + per + per * per;
    const s: Sized = { m: new FileModel("a", 70), bytes: 0 };
    let bs = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      const inode = inodeByName(vol, "a");
      try {
        for (const [at, n] of [[0, 30], [double - 20, 400], [double + 5 * per, 600], [triple - 50, 100], [triple + per * per + 7, 300]]) mapRange(h, f, inode, s.m, at, n, GET_BLOCKS.CREATE);
      } finally {
        f.iput(inode);
      }
      s.bytes = s.m.sizeBlocks * bs;
    });
    expectFsckClean(img, "indirect built");
    for (const blocks of [triple + per * per + 100, triple + 10, double + 5 * per + 1, double + 3, single + 2, 5, 0]) {
      const vol = mount(img);
      try {
        truncateTo(fsOf(vol), vol, s, blocks === 0 ? 0 : blocks * bs - 1000);
      } finally {
        vol.unmount();
      }
      expectFsckClean(img, `indirect truncated to ${blocks} blocks`);
      checkPrefix(img, bs, [s], blocks === double + 3 || blocks === 0);
    }
    const features = runSync("dumpe2fs", ["-h", img]).stdout.match(/^Filesystem features:\s+(.*)$/m)?.[1] ?? "";
    expect(features).not.toMatch(/extent/);
    expect(freeBlocksOf(img)).toBe(free0);
  });
});

d("ext4Truncate of inline-data files", () => {
  it("4k inline_data: files in i_block and system.data truncated to less inline data, e2fsck clean and the kernel reads them", () => {
    const tree = path.join(work, "inline-tree");
    fs.mkdirSync(tree, { recursive: true });
    const data = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => 33 + ((i * 7 + seed) % 90)));
    const sizes: Record<string, number> = { big: 150, mid: 90, small: 50 };
    const img = path.join(work, "inline.img");
    const r = runSync("mkfs.ext4", ["-q", "-F", "-b", "4096", "-O", "^has_journal,inline_data", "-I", "512", "-d", tree, img, "16M"], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
    expect(r.code, r.stderr).toBe(0);
    // mke2fs -d writes blocks; the kernel stores small files inline.
    if (!loop.ok) {
      console.log(`inline truncate skipped: the kernel makes the inline files and ${loop.reason}`);
      return;
    }
    withLoopMountSync(img, (mnt) => {
      for (const [n, len] of Object.entries(sizes)) fs.writeFileSync(path.join(mnt, n), data(len, len));
    });
    const free0 = freeBlocksOf(img);
    const stat = runSync("debugfs", ["-R", "stat /big", img]).stdout;
    expect(stat, "mkfs stored the file inline").toMatch(/Size of inline data: \d+/);
    const steps: [string, number][] = [["big", 100], ["mid", 61], ["small", 20], ["big", 59], ["mid", 0], ["big", 0]];
    for (const [name, to] of steps) {
      const vol = mount(img);
      try {
        const f = fsOf(vol);
        const inode = inodeByName(vol, name);
        try {
          inode.size = to;
          ext4Truncate(f, inode);
        } finally {
          f.iput(inode);
        }
      } finally {
        vol.unmount();
      }
      sizes[name] = to;
      expectFsckClean(img, `inline ${name} truncated to ${to}`);
      // Nothing past i_size stays stored: i_block and system.data hold max(60, size) bytes.
      const st = runSync("debugfs", ["-R", `stat /${name}`, img]).stdout;
      expect(Number(/Size of inline data: (\d+)/.exec(st)?.[1]), st).toBe(Math.max(60, to));
      const ro = mount(img, { readOnly: true });
      try {
        for (const [n, len] of Object.entries(sizes)) expect((ro.readFileSync(`/${n}`) as Buffer).equals(data(len, n === "big" ? 150 : n === "mid" ? 90 : 50).subarray(0, len)), n).toBe(true);
      } finally {
        ro.unmount();
      }
    }
    withLoopMountSync(img, (mnt) => {
      expect(fs.readFileSync(path.join(mnt, "small")).equals(data(50, 50).subarray(0, 20))).toBe(true);
      expect(fs.statSync(path.join(mnt, "big")).size).toBe(0);
    }, { readOnly: true });
    expect(freeBlocksOf(img)).toBe(free0);
  });
});

d("ext4Truncate on a journaled image", () => {
  it("1k, 1 MiB journal (256-credit transactions): truncating a file with blocks in 300 groups spans several transactions (handle restarts) and is e2fsck-clean with the free count back", () => {
    const img = path.join(work, "journaled.img");
    const r = runSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-J", "size=1", img, "2400M"], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
    expect(r.code, r.stderr).toBe(0);
    expect(runSync("debugfs", ["-w", "-R", "write /dev/null j", img]).code).toBe(0);
    const free0 = freeBlocksOf(img);
    const s: Sized = { m: new FileModel("j", 80), bytes: 0 };
    const groups = new Set<number>();
    const vol0 = mount(img);
    try {
      const f = fsOf(vol0);
      const inode = inodeByName(vol0, "j");
      try {
        for (let i = 0; i < 300; i++) {
          const h = f.startHandle(40);
          try {
            // One block per 8192: the goal follows the logical block, one group each.
            const [run] = mapRange(h, f, inode, s.m, i * 8192, 2, GET_BLOCKS.CREATE);
            groups.add(Math.floor((run.pblk - f.sb.firstDataBlock) / f.sb.blocksPerGroup));
          } finally {
            h.stop();
          }
        }
      } finally {
        f.iput(inode);
      }
      s.bytes = s.m.sizeBlocks * 1024;
      expect(f.journal!.maxTransactionBuffers).toBe(256);
    } finally {
      vol0.unmount();
    }
    console.log(`journaled: blocks in ${groups.size} groups`);
    expect(groups.size).toBeGreaterThan(260);
    expectFsckClean(img, "journaled: built");
    const vol = mount(img);
    let commits = 0;
    try {
      const f = fsOf(vol);
      const c0 = f.journal!.stats.commits;
      truncateTo(f, vol, s, 8192 * 20 * 1024 + 777);
      commits = f.journal!.stats.commits - c0;
    } finally {
      vol.unmount();
    }
    console.log(`journaled truncate: ${commits} commits before unmount`);
    expect(commits).toBeGreaterThan(0);
    expectFsckClean(img, "journaled: truncated");
    checkPrefix(img, 1024, [s], true);
    const v2 = mount(img);
    try {
      truncateTo(fsOf(v2), v2, s, 0);
    } finally {
      v2.unmount();
    }
    expectFsckClean(img, "journaled: truncated to nothing");
    expect(freeBlocksOf(img)).toBe(free0);
  });
});
