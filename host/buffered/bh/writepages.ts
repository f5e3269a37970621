// ext4_writepages for the bh path (fs/ext4/inode.c: ext4_do_writepages,
// mpage_prepare_extent_to_map, mpage_map_and_submit_extent): dirty folios are
// taken in index order in batches of contiguous folios; each contiguous run
// of delayed (or, without dioread_nolock, unwritten) dirty blocks is mapped
// with ext4MapBlocks in a handle, i_disksize advanced in that handle, then
// the dirty blocks go out in bios of contiguous device blocks. With
// dioread_nolock new blocks are unwritten extents, converted once their data
// is written (ext4_convert_unwritten_extents at I/O completion).
//
// Why mapping comes before clearing the folios' dirty state: a commit can
// start inside our next handle start, and the ordered-data hook it calls must
// find the folios of blocks allocated in that transaction still dirty (it
// writes them) rather than under writeback but not yet written.

import { writeGather } from "../../device/block-device.js";
import { Ext4Error, type Ext4ErrorCode } from "../../errors.js";
import { PAGE_SIZE, TAG } from "../../cache/folio-cache.js";
import { syncDirtyFolios } from "../../cache/truncate.js";
import { INODE_FLAGS, type Inode } from "../../format/inode.js";
import type { Handle } from "../../journal/handle.js";
import { daAllocated, esRemoveExtent } from "../../fs/delalloc.js";
import { needsCommitToFree } from "../../fs/mballoc.js";
import { ES } from "../../fs/extents-status.js";
import type { Ext4Inode } from "../../fs/inode.js";
import { markInodeDirty } from "../../fs/inode-write.js";
import { ext4MapBlocks, GET_BLOCKS, MAP } from "../../fs/map-blocks.js";
import { MapKind } from "../../fs/mapping.js";
import type { Ext4 } from "../../fs/super.js";
import { BH } from "./buffer-head.js";
import type { BhState } from "./state.js";

/** MAX_WRITEPAGES_EXTENT_LEN: the most blocks one mapping pass allocates. */
export const MAX_WRITEPAGES_EXTENT_LEN = 2048;
/** Largest write request gathered into one bio. */
const MAX_BIO_BYTES = 8 << 20;

export const enum BK { Hole = 0, Delayed = 1, Mapped = 2, Unwritten = 3 }
export interface BlockRun { kind: BK; lblk: number; len: number; pblk: number }

/**
 * What blocks from `lblk` are (at most maxLen of one kind): delayed from the
 * extent status tree, else mapped, unwritten or a hole as ext4_map_blocks
 * looks them up (a hole ends at the next delayed extent).
 */
export function classify(fs: Ext4, inode: Ext4Inode, lblk: number, maxLen: number): BlockRun {
  const es = inode.es;
  const e = es.lookup(lblk);
  if (e && e.status === ES.DELAYED) return { kind: BK.Delayed, lblk, len: Math.min(maxLen, e.lblk + e.len - lblk), pblk: 0 };
  // Asked wide, so a hole is cached in the tree beyond this request (the next small write finds it there).
  const m = fs.mapBlocks(inode, lblk, Math.min(Math.max(maxLen, 2048), 0x100000000 - lblk));
  const len = Math.max(1, Math.min(m.len, maxLen));
  if (m.kind === MapKind.Mapped) return { kind: BK.Mapped, lblk, len, pblk: m.pblk };
  if (m.kind === MapKind.Unwritten) return { kind: BK.Unwritten, lblk, len, pblk: m.pblk };
  const d = es.nextDelayed(lblk);
  return { kind: BK.Hole, lblk, len: d && d.lblk < lblk + len ? Math.max(1, d.lblk - lblk) : len, pblk: 0 };
}

/**
 * Credits for one ext4MapBlocks call that allocates a run (ext4_meta_trans_blocks
 * for one extent: the tree path at three blocks a level plus growth, a bitmap
 * and descriptor for data and each new tree block, the inode, the superblock).
 */
export function mapCallCredits(fs: Ext4, inode: Inode): number {
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) return 3 * 4 + 10;
  const depth = inode.iBlock[6] | (inode.iBlock[7] << 8);
  return 3 * (Math.min(depth, 5) + 2) + 8;
}

export interface WritepagesOpts {
  /** Integrity writeback (WB_SYNC_ALL): tag first, write everything tagged. */
  sync: boolean;
  /** May allocate (false: the ordered-data hook inside a commit, which only writes mapped blocks). */
  canMap: boolean;
}

/** A write bio: contiguous device bytes gathered from parts of folios. */
class WriteBio {
  private start = -1;
  private end = -1;
  private views: Uint8Array[] = [];
  private slots: number[] = [];
  readonly failed = new Map<number, Ext4ErrorCode>();
  constructor(private readonly fs: Ext4) {}

  add(devPos: number, slot: number, offset: number, len: number): void {
    if (this.start >= 0 && (devPos !== this.end || this.end - this.start + len > MAX_BIO_BYTES)) this.submit();
    if (this.start < 0) this.start = this.end = devPos;
    this.views.push(this.fs.wasm.view(this.fs.cache.addr(slot) + offset, len));
    this.slots.push(slot);
    this.end += len;
  }

  submit(): void {
    if (this.start < 0) return;
    const { start, views, slots } = this;
    this.start = this.end = -1;
    this.views = [];
    this.slots = [];
    try {
      const dev = this.fs.device;
      let len = 0;
      for (const v of views) len += v.length;
      if (start + len > dev.size) throw new Ext4Error("EIO", `data write at ${start} is past the end of the device`);
      writeGather(dev, start, views);
    } catch (e) {
      const code: Ext4ErrorCode = e instanceof Ext4Error && e.code === "ENOSPC" ? "ENOSPC" : "EIO";
      for (const s of slots) this.failed.set(s, code);
    }
  }
}

/**
 * ext4_writepages over pages [start, end) of the inode's mapping. Errors are
 * recorded on the mapping (fsync reports them), never thrown at the writer
 * that triggered writeback; returns the first one for callers that want it.
 */
export function bhWritepages(st: BhState, inode: Ext4Inode, start: number, end: number, opts: WritepagesOpts): Ext4ErrorCode | undefined {
  const fs = st.fs;
  const cache = fs.cache;
  const id = cache.mappingOf(inode);
  if (opts.sync) cache.tagForWriteback(id, start, end);
  const tag = opts.sync ? TAG.TOWRITE : TAG.DIRTY;
  let batch: number[] = [];
  let batchBlocks = 0;
  let next = -1;
  let first: Ext4ErrorCode | undefined;
  const flush = () => {
    if (batch.length === 0) return;
    const b = batch;
    batch = [];
    batchBlocks = 0;
    try {
      first ??= writeBatch(st, inode, b, opts);
    } finally {
      for (const s of b) cache.x.folioUnpin(s);
    }
  };
  try {
    for (const slot of cache.folios(id, start, end, tag)) {
      if (cache.isUnderWriteback(slot) || !cache.isDirty(slot)) continue;
      const idx = cache.index(slot);
      if (batch.length && (idx !== next || batchBlocks >= MAX_WRITEPAGES_EXTENT_LEN)) flush();
      cache.x.folioPin(slot);
      batch.push(slot);
      batchBlocks += cache.blocks(slot);
      next = idx + (1 << cache.order(slot));
    }
    flush();
  } finally {
    for (const s of batch) cache.x.folioUnpin(s);
    syncDirtyFolios(fs, inode);
  }
  return first;
}

/** Dirty blocks inside EOF of the batch, as runs of one kind (delayed, unwritten, mapped, hole). */
function dirtyRuns(st: BhState, inode: Ext4Inode, batch: number[]): { slot: number; runs: BlockRun[] }[] {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const lastBlock = Math.ceil(inode.size / bs);
  const out: { slot: number; runs: BlockRun[] }[] = [];
  for (const slot of batch) {
    const n = cache.blocks(slot);
    const firstLblk = (cache.index(slot) * PAGE_SIZE) / bs;
    const runs: BlockRun[] = [];
    for (let b = 0; b < n; ) {
      const d = cache.x.folioFindDirty(slot, b, n - b);
      if (d < 0) break;
      b += d;
      if (firstLblk + b >= lastBlock) break;
      // The dirty stretch from b.
      let e = b + 1;
      while (e < n && firstLblk + e < lastBlock && cache.x.folioFindDirty(slot, e, 1) === 0) e++;
      for (let x = b; x < e; ) {
        const r = classify(fs, inode, firstLblk + x, e - x);
        runs.push(r);
        x += r.len;
      }
      b = e;
    }
    out.push({ slot, runs });
  }
  return out;
}

function writeBatch(st: BhState, inode: Ext4Inode, batch: number[], opts: WritepagesOpts): Ext4ErrorCode | undefined {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const dioread = st.dioreadNolock(inode);
  let err: Ext4ErrorCode | undefined;
  // 1. Map: contiguous runs of blocks needing allocation (or, without dioread_nolock, conversion), across folios.
  if (opts.canMap) {
    const need: BlockRun[] = [];
    for (const f of dirtyRuns(st, inode, batch)) {
      for (const r of f.runs) {
        if (!(r.kind === BK.Delayed || (r.kind === BK.Unwritten && !dioread))) continue;
        const last = need[need.length - 1];
        if (last && last.kind === r.kind && last.lblk + last.len === r.lblk) last.len += r.len;
        else need.push({ ...r });
      }
    }
    for (const r of need) {
      const e = mapRun(st, inode, r, dioread);
      if (e) err ??= e;
    }
  }
  // 2. Write: the dirty mapped blocks of each folio in bios; what still needs mapping stays dirty.
  const lastByte = inode.size;
  const bio = new WriteBio(fs);
  const started: { slot: number; keep: number[] }[] = [];
  const convert: { lblk: number; len: number }[] = [];
  for (const f of dirtyRuns(st, inode, batch)) {
    const slot = f.slot;
    if (!cache.x.folioClearDirtyForIo(slot)) continue; // written meanwhile (the ordered-data hook of a commit)
    cache.startWriteback(slot);
    const keep: number[] = [];
    const fStart = cache.index(slot) * PAGE_SIZE;
    const fEnd = fStart + cache.size(slot);
    // mpage_submit_folio: the part of the folio past EOF goes out as zeros.
    if (lastByte < fEnd && lastByte > fStart) cache.x.zeroRange(cache.addr(slot) + (lastByte - fStart), fEnd - lastByte);
    const firstLblk = fStart / bs;
    const bhs = st.buffers.peek(slot);
    for (const r of f.runs) {
      const off = (r.lblk - firstLblk) * bs;
      if (r.kind === BK.Mapped || (r.kind === BK.Unwritten && opts.canMap)) {
        bio.add(r.pblk * bs, slot, off, r.len * bs);
        if (r.kind === BK.Unwritten) {
          const last = convert[convert.length - 1];
          if (last && last.lblk + last.len === r.lblk) last.len += r.len;
          else convert.push({ lblk: r.lblk, len: r.len });
        }
        if (bhs) {
          for (let i = 0; i < r.len; i++) {
            const bh = bhs[r.lblk - firstLblk + i];
            bh.blocknr = r.pblk + i;
            bh.set(BH.Mapped);
            bh.clear(BH.Delay | BH.New | BH.Dirty);
          }
        }
      } else if (r.kind !== BK.Hole) {
        for (let i = 0; i < r.len; i++) keep.push(r.lblk - firstLblk + i);
      }
    }
    started.push({ slot, keep });
  }
  bio.submit();
  for (const { slot, keep } of started) {
    const failed = bio.failed.get(slot);
    if (!cache.isDirty(slot)) cache.x.folioClearDirty(slot, 0, cache.blocks(slot));
    cache.endWriteback(slot, failed);
    if (failed) err ??= failed;
    // Blocks that could not be mapped here are dirty again (folio_redirty_for_writepage).
    for (const b of keep) cache.markDirty(slot, b, 1);
  }
  // 3. dioread_nolock: the written unwritten extents become written (ext4_convert_unwritten_extents).
  if (convert.length && bio.failed.size === 0) {
    const e = convertUnwritten(st, inode, convert);
    if (e) err ??= e;
  }
  if (err) fs.cache.mappings.setError(cache.mappingOf(inode), err);
  return err;
}

/** Delayed blocks of [lblk, lblk+len) as extents, taken before an allocation changes the tree. */
function delayedIn(inode: Ext4Inode, lblk: number, len: number): { lblk: number; len: number }[] {
  const out: { lblk: number; len: number }[] = [];
  const end = lblk + len;
  for (let at = lblk; at < end; ) {
    const d = inode.es.findExtentRange(ES.DELAYED, at, end - 1);
    if (!d) break;
    const a = Math.max(at, d.lblk);
    const b = Math.min(end, d.lblk + d.len);
    out.push({ lblk: a, len: b - a });
    at = b;
  }
  return out;
}

function countIn(list: { lblk: number; len: number }[], lblk: number, len: number): number {
  let n = 0;
  for (const d of list) n += Math.max(0, Math.min(lblk + len, d.lblk + d.len) - Math.max(lblk, d.lblk));
  return n;
}

/**
 * mpage_map_one_extent for one run: ext4MapBlocks in handles (a new handle
 * when the credits left cannot cover another call), the extent status tree
 * told what the blocks are now, the reservation given back as allocation,
 * data=ordered told about new written blocks, i_disksize advanced. A failure
 * (which the reservation should make impossible) drops the run's delayed
 * blocks and their data, as the kernel's discarded writeback does.
 */
function mapRun(st: BhState, inode: Ext4Inode, run: BlockRun, dioread: boolean): Ext4ErrorCode | undefined {
  const fs = st.fs;
  const bs = fs.sb.blockSize;
  let flags = GET_BLOCKS.CREATE | GET_BLOCKS.METADATA_NOFAIL;
  if (dioread) flags |= GET_BLOCKS.IO_CREATE_EXT;
  if (run.kind === BK.Delayed) flags |= GET_BLOCKS.DELALLOC_RESERVE;
  const perCall = mapCallCredits(fs, inode);
  const end = run.lblk + run.len;
  let lblk = run.lblk;
  let h: Handle | undefined;
  for (let retries = 1; ; retries++) {
  try {
    while (lblk < end) {
      if (h && h.credits < perCall) { h.stop(); h = undefined; }
      h ??= fs.startHandle(perCall * 4);
      const delayed = run.kind === BK.Delayed ? delayedIn(inode, lblk, end - lblk) : [];
      const r = ext4MapBlocks(h, fs, inode, { lblk, len: end - lblk }, flags);
      if (!(r.flags & (MAP.MAPPED | MAP.UNWRITTEN)) || r.pblk === 0) {
        throw new Ext4Error("EIO", `writeback could not map block ${lblk}`, { ino: inode.ino });
      }
      const n = Math.min(r.len, end - lblk);
      inode.es.insert(lblk, n, r.pblk, r.flags & MAP.UNWRITTEN ? ES.UNWRITTEN : ES.WRITTEN);
      if (run.kind === BK.Delayed) daAllocated(fs, inode, lblk, n, countIn(delayed, lblk, n));
      if (r.flags & MAP.NEW && !(r.flags & MAP.UNWRITTEN) && st.orderData(inode)) h.addOrderedInode?.(inode.ino);
      lblk += n;
      // mpage_map_and_submit_extent: i_disksize follows what is mapped, up to i_size.
      const disksize = Math.min(inode.size, lblk * bs);
      if (disksize > inode.disksize) {
        inode.disksize = disksize;
        markInodeDirty(h, fs, inode);
      }
    }
    return undefined;
  } catch (e) {
    if (!(e instanceof Ext4Error)) throw e;
    // ext4_writepages: ENOSPC while freed blocks wait for a commit forces the commit and maps again
    // (the reservation counted them free). Only where no handle is open around this writeback.
    if (e.code === "ENOSPC" && retries <= 3 && needsCommitToFree(fs)) {
      h?.stop();
      h = undefined;
      if (!fs.journal?.running || fs.journal.running.updates === 0) {
        fs.commit();
        continue;
      }
    }
    if (run.kind === BK.Delayed && lblk < end) discardRun(st, inode, lblk, end - lblk);
    fs.warnings.push(`inode ${inode.ino}: delayed block allocation failed for blocks ${lblk}..${end - 1} (${e.code}): their data is lost`);
    return e.code;
  } finally {
    h?.stop();
    h = undefined;
  }
  }
}

/** A run writeback could not map: its delayed blocks and their reservation go, its blocks are no longer dirty. */
function discardRun(st: BhState, inode: Ext4Inode, lblk: number, len: number): void {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  esRemoveExtent(fs, inode, lblk, len);
  const id = cache.mappingOf(inode);
  const p0 = Math.floor((lblk * bs) / PAGE_SIZE);
  const p1 = Math.ceil(((lblk + len) * bs) / PAGE_SIZE);
  for (const slot of cache.folios(id, p0, p1)) {
    const fl = (cache.index(slot) * PAGE_SIZE) / bs;
    const a = Math.max(lblk, fl) - fl;
    const b = Math.min(lblk + len, fl + cache.blocks(slot)) - fl;
    if (b > a) {
      cache.x.folioClearDirty(slot, a, b - a);
      cache.x.folioClearUptodate(slot, a, b - a);
      st.buffers.invalidate(slot, a, b - a);
    }
  }
}

/** ext4_convert_unwritten_extents: IO_CONVERT_EXT over the written ranges, in handles. */
function convertUnwritten(st: BhState, inode: Ext4Inode, ranges: { lblk: number; len: number }[]): Ext4ErrorCode | undefined {
  const fs = st.fs;
  const perCall = mapCallCredits(fs, inode);
  let h: Handle | undefined;
  try {
    for (const rg of ranges) {
      for (let lblk = rg.lblk; lblk < rg.lblk + rg.len; ) {
        if (h && h.credits < perCall) { h.stop(); h = undefined; }
        h ??= fs.startHandle(perCall * 4);
        const r = ext4MapBlocks(h, fs, inode, { lblk, len: rg.lblk + rg.len - lblk }, GET_BLOCKS.IO_CONVERT_EXT);
        const n = Math.max(1, Math.min(r.len, rg.lblk + rg.len - lblk));
        if (r.pblk) inode.es.insert(lblk, n, r.pblk, r.flags & MAP.UNWRITTEN ? ES.UNWRITTEN : ES.WRITTEN);
        lblk += n;
      }
    }
    // As mpage_map_and_submit_extent does for the extent it mapped: i_disksize follows the written range, up to i_size.
    const last = ranges[ranges.length - 1];
    const disksize = Math.min(inode.size, (last.lblk + last.len) * fs.sb.blockSize);
    if (h && disksize > inode.disksize) inode.disksize = disksize;
    if (h) markInodeDirty(h, fs, inode);
    return undefined;
  } catch (e) {
    if (!(e instanceof Ext4Error)) throw e;
    fs.warnings.push(`inode ${inode.ino}: converting unwritten extents after writeback failed (${e.code})`);
    return e.code;
  } finally {
    h?.stop();
  }
}
