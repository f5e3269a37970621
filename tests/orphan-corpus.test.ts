// e2fsprogs' orphan test images (../shared/corpus/e2fsprogs-f) mounted
// read-write: our orphan cleanup must free and truncate what the kernel's
// does (the counts its "N orphan inodes deleted" / "N truncates cleaned up"
// lines gave on Linux 6.18), leave the same bitmaps, and leave an image
// e2fsck passes wherever the kernel's does. Damage the cleanup meets is a
// typed error or a warning, never a crash.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { dumpe2fsFields, fsOf } from "./helpers/jbd2.js";
import { inodeTableDiff } from "./helpers/inode-tables.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const CORPUS = path.resolve(__dirname, "../../shared/corpus/e2fsprogs-f");
const missing = missingTools(["e2fsck", "dumpe2fs"], "e2fsprogs") ?? (fs.existsSync(CORPUS) ? null : `${CORPUS} is absent`);
if (missing) console.log(`orphan-corpus: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

/** Image, and what the kernel's mount reported and left (e2fsck -fn clean afterwards or not). */
const CASES: [string, { deleted: number; truncated: number; kernelClean: boolean }][] = [
  ["f_orphan", { deleted: 5, truncated: 0, kernelClean: true }],
  ["f_orphan_extents_inode", { deleted: 0, truncated: 1, kernelClean: true }],
  ["f_orphan_indirect_inode", { deleted: 0, truncated: 1, kernelClean: true }],
  ["f_clear_orphan_file", { deleted: 19, truncated: 0, kernelClean: true }],
  ["f_badorphan", { deleted: 4, truncated: 0, kernelClean: false }],
  ["f_orphan_dotdot_ft", { deleted: 0, truncated: 0, kernelClean: false }],
];

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-orphan-corpus-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function fsckCode(img: string): { code: number; out: string } {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  return { code: r.code, out: r.stdout + r.stderr };
}

function groupFreeSummary(img: string): string[] {
  const out = runSync("dumpe2fs", [img]).stdout;
  return out.split("\n").filter((l) => /^\s+Free (blocks|inodes): |free blocks, .* free inodes/.test(l)).map((l) => l.trim());
}

d("e2fsprogs orphan images, mounted read-write", () => {
  for (const [name, want] of CASES) {
    it(`${name}: ${want.deleted} deleted, ${want.truncated} truncated, as the kernel's mount`, () => {
      const src = gunzipSync(fs.readFileSync(path.join(CORPUS, `${name}.img.gz`)));
      const ours = path.join(work, `${name}-ours.img`);
      fs.writeFileSync(ours, src);
      // The kernel takes the image's s_errors (continue): a bad orphan is recorded and the cleanup goes on.
      const v = mount(ours, { mountOptions: "errors=continue" });
      const f = fsOf(v);
      expect(f.orphans, f.warnings.join("\n")).toMatchObject({ deleted: want.deleted, truncated: want.truncated });
      v.unmount();
      expect(dumpe2fsFields(ours).get("First orphan inode")).toBeUndefined();
      const after = fsckCode(ours);
      if (want.kernelClean) expect(after.code, after.out).toBe(0);
      const s = loopMountSupport();
      if (!s.ok) {
        console.log(`orphan-corpus ${name}: kernel comparison skipped: ${s.reason}`);
        return;
      }
      const kern = path.join(work, `${name}-kernel.img`);
      fs.writeFileSync(kern, src);
      withLoopMountSync(kern, () => undefined);
      expect(fsckCode(kern).code === 0).toBe(want.kernelClean);
      expect(groupFreeSummary(ours)).toEqual(groupFreeSummary(kern));
      expect(inodeTableDiff(ours, kern), "inode bytes where our cleanup and the kernel's differ").toEqual([]);
    });
  }
});

// Keep the import: a damaged image's typed error is what a failing mount must throw.
void Ext4Error;
