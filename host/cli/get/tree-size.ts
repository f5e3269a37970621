// How many entries a copy will visit, for the progress line's total. The
// whole image: from the group descriptors' free-inode counts (what the kernel
// sums for statfs), free to read; hard links make the real count a little
// higher, so the line stops at 99% until done (an estimate: it takes
// s_first_ino to be 11, as every mke2fs writes it). A subtree: one pass over its
// directories (directory blocks only, the entries' file types say which are
// directories), made only when a progress line is shown.

import { FT } from "../../format/dirent.js";
import type { Inode } from "../../format/inode.js";
import type { Volume } from "../../vfs/volume.js";

const FIRST_INO = 11;

export function treeSize(vol: Volume, top: Inode): number {
  if (top.ino === vol.inodeOf("/").ino) {
    const { files, ffree } = vol.statfsSync();
    // Reserved inodes (1-10, below s_first_ino as mke2fs writes it) are counted used; of them only the root is in the tree.
    return Math.max(1, files - ffree - (FIRST_INO - 1) + 1);
  }
  let n = 1;
  const dirs: Inode[] = [top];
  // Each directory counted once: a hard link to a directory (a loop, in a corrupt image) must not make this endless.
  const seen = new Set<number>([top.ino]);
  while (dirs.length > 0) {
    const d = dirs.pop()!;
    if ((d.mode & 0o170000) !== 0o040000) continue;
    let kids;
    try { kids = vol.readdirInode(d); } catch { continue; } // the copy itself reports it
    n += kids.length;
    for (const k of kids) {
      if (k.fileType !== FT.DIR || seen.has(k.ino)) continue;
      seen.add(k.ino);
      try { dirs.push(vol.inodeByNumber(k.ino)); } catch { /* reported by the copy */ }
    }
  }
  return n;
}
