// Inode tables of two images compared inode by inode, the fields a mount
// stamps with its own clock (dtime, ctime, mtime and their extra words) and
// the checksums over them masked: what differs then is what the two did
// differently to the inodes. The unused slots of an in-inode extent root are
// masked too: the kernel's removal leaves ee_block in a removed entry (it
// zeroes only length and start), ours zeroes the slot whole.

import * as fs from "node:fs";
import { runSync } from "./exec.js";

/** Byte ranges [from, to) of an on-disk inode that carry the writer's clock or a checksum over it. */
const CLOCK_FIELDS: [number, number][] = [[0x0c, 0x18], [0x7c, 0x7e], [0x82, 0x8c]];

function tables(img: string): { blocks: number[]; inodeSize: number; blockSize: number } {
  const out = runSync("dumpe2fs", [img]).stdout;
  const inodeSize = Number(/^Inode size:\s+(\d+)/m.exec(out)?.[1]);
  const blockSize = Number(/^Block size:\s+(\d+)/m.exec(out)?.[1]);
  const blocks = [...out.matchAll(/Inode table at (\d+)-(\d+)/g)].map((m) => Number(m[1]));
  return { blocks, inodeSize, blockSize };
}

/** "ino:offset" of every differing byte outside the clock fields (empty when the inodes agree). */
export function inodeTableDiff(a: string, b: string, limit = 40): string[] {
  const ta = tables(a);
  const tb = tables(b);
  if (ta.blocks.join() !== tb.blocks.join()) return ["inode tables at different places"];
  const x = fs.readFileSync(a);
  const y = fs.readFileSync(b);
  const perGroup = Number(/^Inodes per group:\s+(\d+)/m.exec(runSync("dumpe2fs", ["-h", a]).stdout)?.[1]);
  const out: string[] = [];
  ta.blocks.forEach((start, g) => {
    for (let i = 0; i < perGroup && out.length < limit; i++) {
      const o = start * ta.blockSize + i * ta.inodeSize;
      const usedRoot = (z: Buffer) => (z.readUInt32LE(o + 0x20) & 0x80000 && z.readUInt16LE(o + 0x28) === 0xf30a ? 0x28 + 12 + 12 * z.readUInt16LE(o + 0x2a) : 0x64);
      const rootEnd = Math.max(usedRoot(x), usedRoot(y));
      for (let k = 0; k < ta.inodeSize; k++) {
        if (x[o + k] === y[o + k] || CLOCK_FIELDS.some(([f, t]) => k >= f && k < t) || (k >= rootEnd && k < 0x64)) continue;
        out.push(`${g * perGroup + i + 1}:0x${k.toString(16)}`);
        if (out.length >= limit) break;
      }
    }
  });
  return out;
}
