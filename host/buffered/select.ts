// Which buffered I/O path an inode takes: iomap when the mount asks for it
// (buffered_iomap) and the inode has nothing iomap does not support; the
// series' fallback rules send the rest to buffer heads.

import type { Inode } from "../format/inode.js";
import { shouldUseBufferedIomap } from "../fs/inode.js";
import type { Ext4 } from "../fs/super.js";
import type { BufferedIO } from "./io.js";

/** The rules live with the in-core inode, which fixes the path in a state bit at iget. */
export { shouldUseBufferedIomap };

export function selectPath(fs: Ext4, inode: Inode, paths: { bh: BufferedIO; iomap: BufferedIO }): BufferedIO {
  return shouldUseBufferedIomap(fs, inode) ? paths.iomap : paths.bh;
}
