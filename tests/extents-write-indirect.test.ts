// Block-mapped files (ext3 images without extents) written through direct,
// single, double and triple indirect blocks, punched and truncated; the image
// stays ext3 (no extent feature turns up), e2fsck -fn stays clean, our reader
// and the kernel read the model's bytes, and the free count comes back.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { indRemoveSpace } from "../host/fs/indirect-write.js";
import { ext4MapBlocks, GET_BLOCKS, MAP } from "../host/fs/map-blocks.js";
import { Ext4Error } from "../host/index.js";
import { missingTools, runSync } from "./helpers/exec.js";
import {
  checkContents, expectFsckClean, FileModel, freeBlocksOf, inodeOf, makeImage, mapRange, modelRemove, mulberry32, setSize, withRw,
} from "./helpers/extent-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-extind-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

d("block-mapped files written", () => {
  it("1k ext3: allocations in the direct, single, double and triple indirect ranges; punches; truncates to nothing", () => {
    const img = makeImage(work, "ind-1k", ["-t", "ext3", "-O", "^has_journal", "-b", "1024"], "96M", ["a", "b"]);
    const features = () => runSync("dumpe2fs", ["-h", img]).stdout.match(/^Filesystem features:\s+(.*)$/m)?.[1] ?? "";
    expect(features()).not.toMatch(/extent/);
    const free0 = freeBlocksOf(img);
    const a = new FileModel("a", 20);
    const b = new FileModel("b", 21);
    const per = 256;
    const single = 12;
    const double = 12 + per;
    const triple = 12 + per + per * per;
    const rnd = mulberry32(0x1ad);
    let bs = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      const ai = inodeOf(vol, "a");
      const bi = inodeOf(vol, "b");
      // Runs that cross every boundary: direct into single, single into double, inside double, double into triple.
      for (const [s, n] of [[5, 20], [double - 10, 30], [double + 3 * per - 2, 5], [triple - 3, 10], [triple + per * per - 4, 8]]) mapRange(h, f, ai, a, s, n, GET_BLOCKS.CREATE);
      // Random singles all over the four ranges.
      for (let i = 0; i < 400; i++) {
        const zone = Math.floor(rnd() * 4);
        const base = [0, single, double, triple][zone];
        const span = [12, per, per * per, 3 * per * per][zone];
        mapRange(h, f, bi, b, base + Math.floor(rnd() * span), 1 + Math.floor(rnd() * 3), GET_BLOCKS.CREATE);
      }
      // A mapped block answers MAPPED, and BOUNDARY at the last pointer of an indirect block.
      const r = ext4MapBlocks(h, f, ai, { lblk: double - 1, len: 1 }, GET_BLOCKS.CREATE);
      expect(r.flags).toBe(MAP.MAPPED | MAP.BOUNDARY);
      // No unwritten extents in a block-mapped file.
      expect(() => ext4MapBlocks(h, f, ai, { lblk: 9000, len: 1 }, GET_BLOCKS.CREATE_UNWRIT_EXT)).toThrow(Ext4Error);
    });
    expectFsckClean(img, "indirect allocations");
    checkContents(img, bs, [a, b], true);

    withRw(img, (f, h, vol) => {
      const ai = inodeOf(vol, "a");
      const bi = inodeOf(vol, "b");
      for (const [s, e] of [[10, 13], [double - 5, double + 5], [triple - 1, triple], [0, 0]]) { indRemoveSpace(h, f, ai, s, e); modelRemove(a, s, e); }
      for (let i = 0; i < 40; i++) {
        const s = Math.floor(rnd() * (triple + per * per));
        const e = s + Math.floor(rnd() * (i % 8 === 0 ? 70000 : 300));
        indRemoveSpace(h, f, bi, s, e);
        modelRemove(b, s, e);
      }
    });
    expectFsckClean(img, "indirect punches");
    checkContents(img, bs, [a, b], false);

    for (const t of [triple + 5, double + 100, single + 3, 7, 0]) {
      withRw(img, (f, h, vol) => {
        for (const [m, name] of [[a, "a"], [b, "b"]] as const) {
          const inode = inodeOf(vol, name);
          indRemoveSpace(h, f, inode, t, 0xffffffff);
          modelRemove(m, t, Infinity);
          setSize(h, f, inode, m, Math.min(m.sizeBlocks, t));
        }
      });
      expectFsckClean(img, `indirect truncate to ${t}`);
      checkContents(img, bs, [a, b], t === 0 || t === double + 100);
    }
    expect(freeBlocksOf(img)).toBe(free0);
    expect(features()).not.toMatch(/extent/);
  });
});
