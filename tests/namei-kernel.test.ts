// The kernel as the reference for directory layout: the same names linked in
// the same order by the kernel (link(2) on a loop mount) and by us must give
// the same directory blocks, logical block by logical block: every entry at
// the same offset with the same record, the same index entries. (Only the
// bytes no entry owns may differ: the kernel leaves stale bytes in name
// padding and slack, which the checksums then cover.)

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { missingTools } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { bytes, dirShape, fsck, fsOf, link, linkedTree, makeImage, tick, unlink, withHandleAsync } from "./helpers/namei.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
const loop = loopMountSupport();
const why = missing ?? (loop.ok ? null : loop.reason);
if (why) console.log(`namei-kernel: skipped: ${why}`);
const d = why ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (!why) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-namei-kernel-"));
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** What of a directory block is structure: entry headers and names, or the index's count and entries; the rest zeroed. */
function canonical(b: Uint8Array, bs: number, indexed: boolean, lblk: number): string {
  const out = new Uint8Array(bs);
  const u16 = (o: number) => b[o] | (b[o + 1] << 8);
  const dxNode = indexed && (lblk === 0 || (u16(4) === (bs === 65536 ? 65535 : bs) && b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0));
  if (dxNode) {
    const co = lblk === 0 ? 32 : 8;
    const count = u16(co + 2);
    out.set(b.subarray(0, co + count * 8));
    if (lblk === 0) out.fill(0, 12 + 8 + 2, 24); // ".." name padding
    return Buffer.from(out).toString("hex");
  }
  for (let o = 0; o < bs;) {
    const rl = u16(o + 4) || bs;
    const live = b[o] | b[o + 1] | b[o + 2] | b[o + 3];
    out.set(b.subarray(o, o + 8 + (live ? b[o + 6] : 0)), o);
    if (!live) out.fill(0, o + 6, o + 8);
    o += rl;
  }
  if (b[bs - 5] === 0xde) out.fill(0, bs - 4, bs); // the checksum covers the stale bytes too
  return Buffer.from(out).toString("hex");
}

/** Every logical block of /d, as our reader reads it. */
function dirBlocks(img: string): { size: number; flags: number; blocks: Uint8Array[]; levels: number } {
  const vol = mount(img, { readOnly: true });
  try {
    const f = fsOf(vol);
    const ino = vol.statSync("/d").ino;
    const dir = f.inode(ino);
    const blocks: Uint8Array[] = [];
    for (let l = 0; l * f.sb.blockSize < dir.size; l++) blocks.push(f.bcache.readCopy(f.mapBlocks(dir, l, 1).pblk));
    return { size: dir.size, flags: dir.flags, blocks, levels: dirShape(f, ino).levels };
  } finally {
    vol.unmount();
  }
}

d("directory blocks as the kernel writes them", () => {
  it.each([
    ["1k-csum-halfmd4", 1024, "", "half_md4", 9000],
    ["4k-nocsum-tea", 4096, "^metadata_csum", "tea", 4000],
    ["1k-largedir-long-names", 1024, "large_dir", "half_md4", 34000],
  ] as const)("%s: the same links in the same order give the same blocks", async (name, bs, features, hash, n) => {
    const base = makeImage(work, { name: `k-${name}`, blockSize: bs, features, hash, sizeMiB: 128, tree: linkedTree(10) });
    const ours = path.join(work, `k-${name}-ours.img`);
    fs.copyFileSync(base, ours);
    // Links, then every third name removed, then more links into the room made and past it.
    const pad = n > 20000 ? 200 : 0;
    const names = Array.from({ length: n }, (_, i) => `${(i * 7919).toString(36)}-${"k".repeat(pad + (i % 13))}`);
    const removed = names.filter((_, i) => i % 3 === 1);
    const more = Array.from({ length: n >> 1 }, (_, i) => `more-${(i * 104729).toString(36)}${"m".repeat(i % 7)}`);
    withLoopMountSync(base, (mnt) => {
      names.forEach((k, i) => fs.linkSync(path.join(mnt, "pool", `p${i % 16}`), path.join(mnt, "d", k)));
      for (const k of removed) fs.unlinkSync(path.join(mnt, "d", k));
      more.forEach((k, i) => fs.linkSync(path.join(mnt, "pool", `p${i % 16}`), path.join(mnt, "d", k)));
    });
    await tick();
    await withHandleAsync(ours, async (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      const pool = Array.from({ length: 16 }, (_, i) => vol.statSync(`/pool/p${i}`).ino);
      for (let i = 0; i < names.length; i++) {
        if (i % 1000 === 0) await tick();
        link(f, h, dirIno, bytes(names[i]), pool[i % 16]);
      }
      for (const k of removed) unlink(f, h, dirIno, bytes(k));
      await tick();
      more.forEach((k, i) => link(f, h, dirIno, bytes(k), pool[i % 16]));
    });
    fsck(base);
    fsck(ours);
    const k = dirBlocks(base);
    if (n > 20000) expect(k.levels).toBe(3);
    const o = dirBlocks(ours);
    console.log(`namei-kernel: ${name}: ${n} names, ${k.blocks.length} blocks, depth ${k.levels}`);
    expect(o.size).toBe(k.size);
    expect(o.flags).toBe(k.flags);
    const indexed = (k.flags & 0x1000) !== 0;
    const differing = k.blocks.map((b, l) => (canonical(b, bs, indexed, l) === canonical(o.blocks[l], bs, indexed, l) ? -1 : l)).filter((l) => l >= 0);
    expect(differing).toEqual([]);
  }, 600_000);
});
