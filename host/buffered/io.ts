// The interface both buffered I/O paths implement, and what they share.

import { Ext4Error } from "../errors.js";
import type { Inode } from "../format/inode.js";
import type { Ext4 } from "../fs/super.js";
import { PAGE_SIZE } from "../cache/folio-cache.js";
import type { ReadaheadState } from "./readahead.js";

export interface BufferedIO {
  readonly name: "bh" | "iomap";
  /**
   * Reads file bytes [pos, pos + dst.length) clipped to i_size into dst,
   * through the folio cache. Returns the number of bytes read (0 at EOF).
   */
  read(inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState): number;
}

/** Copies file bytes [pos, pos+len) out of uptodate folios into dst. */
export function copyFromFolios(fs: Ext4, inode: Inode, pos: number, dst: Uint8Array, len: number): void {
  let done = 0;
  const cache = fs.cache;
  while (done < len) {
    const p = pos + done;
    const slot = cache.lookup(inode.ino, Math.floor(p / PAGE_SIZE));
    if (slot < 0) throw new Ext4Error("EIO", `folio for offset ${p} vanished before copy-out`, { ino: inode.ino });
    const fStart = cache.index(slot) * PAGE_SIZE;
    const fSize = cache.size(slot);
    const off = p - fStart;
    const n = Math.min(len - done, fSize - off);
    const src = fs.wasm.view(cache.addr(slot) + off, n);
    dst.set(src, done);
    done += n;
  }
}

/** The encrypted-content refusal shared by both paths. */
export function refuseEncrypted(inode: Inode): never {
  throw new Ext4Error("ENOKEY", "file content is encrypted (fscrypt); no key is available", { ino: inode.ino });
}
