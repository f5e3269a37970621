// Copying a regular file's bytes out of the image, holes kept as holes: ranges
// the file does not map are skipped without reading, and of what is read only
// blocks holding a non-zero byte are written; ftruncate then sets the size.
// (All-zero data blocks and unwritten extents become holes too: same bytes.)

import * as fs from "node:fs";
import type { Inode } from "../../format/inode.js";
import type { Volume } from "../../vfs/volume.js";

const CHUNK_BYTES = 1 << 20;

/** Copies the file's bytes to dstFd; bs is the image's block size (the unit of holes). */
export function copyFileData(vol: Volume, shown: string, inode: Inode, bs: number, dstFd: number, onBytes: (n: number) => void): void {
  const size = inode.size;
  const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  // One buffer for every file of a copy: a fresh 1 MiB per file made the
  // garbage collector most of the time of a tree copy, and the resident set large.
  const buf = scratch(chunkBlocks * bs);
  const zero = zeros(bs);
  // Drop-behind: read once, not kept in the cache.
  const fd = vol.openInode(inode, shown, { dropBehind: true });
  try {
    const totalBlocks = Math.ceil(size / bs);
    let lblk = 0;
    let writtenEnd = 0;
    while (lblk < totalBlocks) {
      let n = Math.min(chunkBlocks, totalBlocks - lblk);
      const m = vol.blockRunInode(inode, lblk, n);
      if (m.hole) {
        lblk += Math.max(1, m.blocks);
        continue;
      }
      n = Math.min(n, Math.max(1, m.blocks));
      const pos = lblk * bs;
      const want = Math.min(n * bs, size - pos);
      const got = readFully(vol, fd, buf, want, pos);
      writtenEnd = Math.max(writtenEnd, writeNonZeroRuns(dstFd, buf, got, pos, bs, zero));
      onBytes(got);
      if (got < want) break; // the file ended early (size changed under us): stop at what exists
      lblk += n;
    }
    // The size is right already when the last write reached it; else a hole (or nothing) ends the file.
    if (writtenEnd !== size) fs.ftruncateSync(dstFd, size);
  } finally {
    vol.closeSync(fd);
  }
}

let scratchBuf: Buffer | null = null;
let zeroBuf: Buffer | null = null;

function scratch(n: number): Buffer {
  if (!scratchBuf || scratchBuf.length < n) scratchBuf = Buffer.allocUnsafe(n);
  return scratchBuf.subarray(0, n);
}

function zeros(n: number): Buffer {
  if (!zeroBuf || zeroBuf.length !== n) zeroBuf = Buffer.alloc(n);
  return zeroBuf;
}

function readFully(vol: Volume, fd: number, buf: Buffer, want: number, pos: number): number {
  let got = 0;
  while (got < want) {
    const r = vol.readSync(fd, buf, got, want - got, pos + got);
    if (r === 0) break;
    got += r;
  }
  return got;
}

/** Writes buf[0, len) at file offset pos, skipping blocks that are all zero. */
/** Returns the file offset the last write ended at (0 if nothing was written). */
function writeNonZeroRuns(fd: number, buf: Buffer, len: number, pos: number, bs: number, zero: Buffer): number {
  let ended = 0;
  let runStart = -1;
  for (let off = 0; off < len; off += bs) {
    const end = Math.min(off + bs, len);
    const isZero = buf.compare(zero, 0, end - off, off, end) === 0;
    if (!isZero && runStart < 0) runStart = off;
    if (isZero && runStart >= 0) {
      writeAt(fd, buf, runStart, off, pos);
      ended = pos + off;
      runStart = -1;
    }
  }
  if (runStart >= 0) {
    writeAt(fd, buf, runStart, len, pos);
    ended = pos + len;
  }
  return ended;
}

function writeAt(fd: number, buf: Buffer, from: number, to: number, pos: number): void {
  let off = from;
  while (off < to) off += fs.writeSync(fd, buf, off, to - off, pos + off);
}
