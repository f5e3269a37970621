// A walk over a tree in the image for the -R options: every entry below
// `top` (not top itself), parents before children, symlinks not followed.
// Paths are bytes, so names that are not UTF-8 are reached exactly.

import type { Dirent } from "../vfs/types.js";
import type { Volume } from "../vfs/volume.js";
import { joinPath } from "./format.js";

export function walkTree(vol: Volume, top: string | Buffer, fn: (path: Buffer) => void): void {
  const dirs: Buffer[] = [Buffer.from(top)];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    const kids = vol.readdirSync(dir, { withFileTypes: true, encoding: "buffer" }) as Dirent[];
    for (const k of kids) {
      const p = joinPath(dir, k.rawName);
      fn(p);
      if (k.isDirectory()) dirs.push(p);
    }
  }
}
