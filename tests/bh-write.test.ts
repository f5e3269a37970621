// The bh buffered write path (host/buffered/bh/write.ts, writepages.ts,
// sync.ts) through the fs layer: delalloc and nodelalloc, dioread_nolock and
// dioread_lock, data=ordered / writeback, journaled and not, 4k, 1k and
// bigalloc. Judged by our own reads, e2fsck -fn and the kernel.

import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { allocStats } from "../host/fs/mballoc.js";
import { missingTools } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";
import { createFile, expectClean, makeImage, open, pattern, readAll, rmrf } from "./helpers/bh-write.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`bh-write: e2fsck checks skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`bh-write: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bhw-")); });
afterAll(() => { if (work) rmrf(work); });

/** The kernel's bytes of root-directory files. */
function kernelRead(img: string, names: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  withLoopMountSync(img, (mnt) => { for (const n of names) out.set(n, nfs.readFileSync(path.join(mnt, n))); }, { readOnly: true });
  return out;
}

interface Variant { name: string; mkfs: Parameters<typeof makeImage>[3]; opts?: string }
const variants: Variant[] = [
  { name: "4k-ordered", mkfs: { blockSize: 4096 } },
  { name: "4k-ordered-dioread_lock", mkfs: { blockSize: 4096 }, opts: "dioread_lock" },
  { name: "4k-nodelalloc", mkfs: { blockSize: 4096 }, opts: "nodelalloc" },
  { name: "4k-writeback", mkfs: { blockSize: 4096 }, opts: "data=writeback" },
  { name: "1k-nojournal", mkfs: { blockSize: 1024, features: "^has_journal" } },
  { name: "1k-nodelalloc-nojournal", mkfs: { blockSize: 1024, features: "^has_journal" }, opts: "nodelalloc" },
  { name: "bigalloc", mkfs: { blockSize: 4096, features: "bigalloc", clusterSize: 65536 } },
];

d("bh buffered writes", () => {
  it.each(variants)("$name: random writes match a model in our reads, e2fsck and the kernel", (v) => {
    const img = makeImage(work, `rand-${v.name}`, "64M", v.mkfs);
    const rnd = mulberry32(0xb0 + v.name.length);
    const names = ["a", "b", "c"];
    const models = names.map(() => Buffer.alloc(0));
    let m = open(img, v.opts);
    let files = names.map((n) => createFile(m.fs, n));
    try {
      for (let op = 0; op < 300; op++) {
        const k = Math.floor(rnd() * names.length);
        const f = files[k];
        const r = rnd();
        // Unaligned, partial-block, past-EOF (sparse) and block-edge writes.
        const pos = r < 0.3 ? models[k].length + Math.floor(rnd() * 20000) : Math.floor(rnd() * (models[k].length + 8192));
        const len = rnd() < 0.2 ? 1 + Math.floor(rnd() * 16) : rnd() < 0.5 ? 1 + Math.floor(rnd() * 9000) : 1 + Math.floor(rnd() * 300000);
        const data = pattern(op, len);
        expect(m.io.write(f, pos, data)).toBe(len);
        if (pos + len > models[k].length) {
          const grown = Buffer.alloc(pos + len);
          models[k].copy(grown);
          models[k] = grown;
        }
        models[k].set(data, pos);
        expect(f.size).toBe(models[k].length);
        const q = rnd();
        if (q < 0.05) m.io.fsync(f, rnd() < 0.5);
        else if (q < 0.1) m.io.writeback(f, 0, Infinity, false);
        if (op % 50 === 49) {
          for (let i = 0; i < names.length; i++) expect(readAll(m, files[i]).equals(models[i]), `${names[i]} at op ${op}`).toBe(true);
        }
        if (op === 150) {
          // Unmount and remount midway: everything written reaches the image.
          for (const f2 of files) m.fs.iput(f2);
          m.vol.unmount();
          expectClean(img);
          m = open(img, v.opts);
          files = names.map((_, i) => m.fs.iget(files[i].ino));
          for (let i = 0; i < names.length; i++) expect(readAll(m, files[i]).equals(models[i]), `${names[i]} after remount`).toBe(true);
        }
      }
      for (const f of files) expect(f.reservedDataBlocks).toBeGreaterThanOrEqual(0);
    } finally {
      for (const f of files) m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true });
    try {
      for (let i = 0; i < names.length; i++) expect((again.readFileSync(`/${names[i]}`) as Buffer).equals(models[i]), names[i]).toBe(true);
    } finally {
      again.unmount();
    }
    if (loop.ok) {
      const k = kernelRead(img, names);
      for (let i = 0; i < names.length; i++) expect(k.get(names[i])!.equals(models[i]), `kernel: ${names[i]}`).toBe(true);
    }
  });

  it("delayed allocation: nothing is allocated until writeback, then the reservation becomes the allocation", () => {
    const img = makeImage(work, "da-account", "64M", { blockSize: 4096, features: "^has_journal" });
    const m = open(img);
    const f = createFile(m.fs, "f");
    try {
      const before = allocStats(m.fs);
      m.io.write(f, 0, pattern(1, 100 * 4096));
      expect(f.delayedBlocks).toBe(100);
      expect(f.reservedDataBlocks).toBe(100);
      expect(allocStats(m.fs).dirtyClusters).toBe(before.dirtyClusters + 100);
      expect(allocStats(m.fs).freeClusters).toBe(before.freeClusters);
      expect(f.disksize).toBe(0);
      m.io.writeback(f, 0, Infinity, true);
      expect(f.delayedBlocks).toBe(0);
      expect(f.reservedDataBlocks).toBe(0);
      expect(allocStats(m.fs).dirtyClusters).toBe(before.dirtyClusters);
      expect(allocStats(m.fs).freeClusters).toBeLessThanOrEqual(before.freeClusters - 100);
      expect(f.disksize).toBe(100 * 4096);
      expect(f.dirtyFolios).toBe(0);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
  });
});
