// The read-write mount lifecycle (fs/ext4/super.c): what a read-write mount
// refuses, the journal loaded for writing, ext4_setup_super's superblock
// changes (mount count and time, needs_recovery while a journal is in use,
// VALID_FS cleared only without one), the fields ext4_commit_super refreshes
// (write time, lifetime writes), and the clean state put back at unmount.

import type { BlockDevice } from "../device/block-device.js";
import { Ext4Error } from "../errors.js";
import { setU16, setU32, u16 } from "../format/bytes.js";
import { COMPAT, INCOMPAT, RO_COMPAT } from "../format/features.js";
import type { Superblock } from "../format/superblock.js";
import { Jbd2Journal } from "../journal/journal.js";
import type { ParsedOptions } from "../options.js";
import { writeDevice } from "../cache/buffer-cache.js";
import { planRecovery } from "../journal/recovery.js";
import { MapKind } from "./mapping.js";
import { journalBlockToDevice, journalLog } from "./recovery.js";
import type { Ext4 } from "./super.js";

const S_MTIME = 0x2c;
const S_WTIME = 0x30;
const S_MNT_COUNT = 0x34;
const S_MAX_MNT_COUNT = 0x36;
const S_STATE = 0x3a;
const S_KBYTES_WRITTEN = 0x178;
const S_WTIME_HI = 0x274;
const S_MTIME_HI = 0x275;
const EXT4_VALID_FS = 0x1;
const EXT4_ERROR_FS = 0x2;
const EXT4_DFL_MAX_MNT_COUNT = 20;

/** EXT4_ENC_UTF8_12_1: the one casefold encoding the kernel knows. */
const EXT4_ENC_UTF8_12_1 = 1;

/**
 * Before anything is written: what a read-write mount refuses. The write-feature
 * gate: read-write only where every feature's metadata is kept exact (e2fsck
 * checks it), with the kernel's verdict where it has one (docs/design.md, "The
 * write-feature gate", gives the reason per feature). Unknown ro_compat bits
 * and the READONLY bit are checkFeatures' (super.ts): they decide at any mount.
 */
export function checkWritable(sb: Superblock, o: ParsedOptions): void {
  if (o.bufferedIomap) {
    // Interim rule until issue 7: every inode written takes the bh path.
    throw new Ext4Error("EOPNOTSUPP", "buffered_iomap is read-only until the iomap write path lands (issue 7): mount read-only or without buffered_iomap");
  }
  if (sb.featureRoCompat & (RO_COMPAT.QUOTA | RO_COMPAT.PROJECT)) {
    // The kernel turns quota usage tracking on with the feature; we do not update the quota files, and e2fsck compares them.
    const which = [sb.featureRoCompat & RO_COMPAT.QUOTA ? "quota" : "", sb.featureRoCompat & RO_COMPAT.PROJECT ? "project" : ""].filter(Boolean).join(" and ");
    throw new Ext4Error("EOPNOTSUPP", `${which} usage is not kept up to date by this engine yet: mount read-only`);
  }
  // ea_inode stays writable: what would create, change or drop a value in an inode is refused per operation
  // (xattr-write.ts, write-gate.ts holdsEaInodeRefs), so no reference count can go wrong.
  if ((sb.featureIncompat & INCOMPAT.CASEFOLD) && sb.encoding !== EXT4_ENC_UTF8_12_1) {
    // ext4_fill_super refuses an encoding it does not know at any mount; we read names byte for byte, but add none.
    throw new Ext4Error("EOPNOTSUPP", `casefold encoding ${sb.encoding} is unknown: mount read-only`);
  }
  if (sb.featureIncompat & INCOMPAT.MMP) {
    throw new Ext4Error("EOPNOTSUPP", "multiple-mount protection (mmp) is not supported read-write: mount read-only");
  }
  if (o.noRecovery && (sb.featureCompat & COMPAT.HAS_JOURNAL) && (sb.featureIncompat & INCOMPAT.RECOVER)) {
    // ext4_fill_super: "required journal recovery suppressed and not mounted read-only".
    throw new Ext4Error("EINVAL", "the journal needs recovery: noload/norecovery needs a read-only mount (add ro)");
  }
}

/** The device blocks of the journal inode, in journal-logical order. */
function journalBlocks(fs: Ext4): number[] {
  const ino = fs.sb.journalInum;
  if (ino === 0) throw new Ext4Error("EOPNOTSUPP", "external journal devices are not supported read-write");
  const jinode = fs.inode(ino);
  const n = Math.floor(jinode.size / fs.sb.blockSize);
  const out: number[] = [];
  while (out.length < n) {
    const m = fs.mapBlocks(jinode, out.length, n - out.length);
    if (m.kind !== MapKind.Mapped) throw new Ext4Error("EFSCORRUPTED", `journal block ${out.length} is not mapped`, { ino });
    for (let i = 0; i < m.len && out.length < n; i++) out.push(m.pblk + i);
  }
  return out;
}

/**
 * jbd2_journal_wipe: a log left behind without needs_recovery is not
 * replayed but skipped (the kernel: "ignoring recovery information"), the
 * sequence moved past every transaction in it so no stale block can ever
 * read as a continuation of ours.
 */
function wipeUnneededLog(fs: Ext4): void {
  if (fs.sb.featureIncompat & INCOMPAT.RECOVER) return;
  const plan = planRecovery(journalLog(fs), { ignoreChecksums: !fs.verifyChecksums, fsBlockCount: fs.sb.blocksCount });
  if (!plan.needed) return;
  fs.warnings.push(`journal: ignoring recovery information (transactions ${plan.firstTid}..${plan.lastTid}) on a filesystem not marked needs_recovery`);
  writeDevice(fs.device, journalBlockToDevice(fs, 0) * fs.sb.blockSize, plan.cleanSuperblock);
  fs.device.flush();
  // The scan cached log blocks that the writer will now overwrite around the cache.
  const ino = fs.inode(fs.sb.journalInum);
  const n = Math.floor(ino.size / fs.sb.blockSize);
  for (let j = 0; j < n;) {
    const m = fs.mapBlocks(ino, j, n - j);
    if (m.kind === MapKind.Mapped) fs.bcache.forgetRange(m.pblk, m.len);
    j += Math.max(1, m.len);
  }
}

/** ext4_load_journal for writing (after any replay) with ext4_init_journal_params' options. */
export function loadJournalForWriting(fs: Ext4): Jbd2Journal {
  const o = fs.config.options;
  wipeUnneededLog(fs);
  const j = new Jbd2Journal(
    { device: fs.device, bcache: fs.bcache, blockSize: fs.sb.blockSize, blocks: journalBlocks(fs) },
    {
      metadataCsum: fs.metadataCsum,
      is64bit: (fs.sb.featureIncompat & INCOMPAT.BIT64) !== 0,
      journalChecksum: o.journalChecksum ?? fs.metadataCsum,
      journalAsyncCommit: o.journalAsyncCommit,
      barrier: o.barrier,
      commitSeconds: o.commitSeconds,
      dataJournal: o.data === "journal",
      // The kernel turns fast commits on with the feature: its area at the journal's end stays out of our log.
      fastCommit: (fs.sb.featureCompat & COMPAT.FAST_COMMIT) !== 0,
      // A quarter of the folio cache may wait for the checkpoint; the rest stays for everyone else.
      maxPinnedBuffers: Math.max(64, Math.floor(fs.cache.stats().capacityBytes / fs.sb.blockSize / 4)),
    },
  );
  return j;
}

/** ext4_update_tstamp: the low 32 bits and the high byte of a superblock time. */
function setTime(raw: Uint8Array, lo: number, hi: number, sec: number): void {
  setU32(raw, lo, sec >>> 0);
  raw[hi] = Math.floor(sec / 0x100000000) & 0xff;
}

/** ext4_setup_super for a read-write mount: returns the s_state to put back at unmount (s_mount_state). */
export function setupSuper(fs: Ext4, now: number): number {
  const sb = fs.sb;
  const raw = sb.raw;
  const mountState = u16(raw, S_STATE);
  if (!(mountState & EXT4_VALID_FS)) fs.warnings.push("warning: mounting unchecked fs, running e2fsck is recommended");
  else if (mountState & EXT4_ERROR_FS) fs.warnings.push("warning: mounting fs with errors, running e2fsck is recommended");
  if (!fs.journal) setU16(raw, S_STATE, mountState & ~EXT4_VALID_FS);
  if (((u16(raw, S_MAX_MNT_COUNT) << 16) >> 16) === 0) setU16(raw, S_MAX_MNT_COUNT, EXT4_DFL_MAX_MNT_COUNT);
  setU16(raw, S_MNT_COUNT, (u16(raw, S_MNT_COUNT) + 1) & 0xffff);
  setTime(raw, S_MTIME, S_MTIME_HI, now);
  if (fs.journal) {
    sb.featureIncompat |= INCOMPAT.RECOVER;
    if (sb.featureCompat & COMPAT.ORPHAN_FILE) sb.featureRoCompat |= RO_COMPAT.ORPHAN_PRESENT;
  }
  return mountState;
}

/** ext4_put_super's last superblock changes: recovery no longer needed, the mount state back. */
export function cleanSuper(fs: Ext4, mountState: number): void {
  const sb = fs.sb;
  sb.featureIncompat &= ~INCOMPAT.RECOVER;
  sb.featureRoCompat &= ~RO_COMPAT.ORPHAN_PRESENT;
  setU16(sb.raw, S_STATE, mountState);
}

/** ext4_update_super's write time and lifetime writes (s_kbytes_written at mount + what this mount wrote). */
export function updateSuperStats(raw: Uint8Array, now: number, kbytesAtMount: number, bytesWritten: number): void {
  setTime(raw, S_WTIME, S_WTIME_HI, now);
  const kb = kbytesAtMount + Math.floor(bytesWritten / 1024);
  setU32(raw, S_KBYTES_WRITTEN, kb >>> 0);
  setU32(raw, S_KBYTES_WRITTEN + 4, Math.floor(kb / 0x100000000) >>> 0);
}

/** Counts the bytes a read-write mount writes (the block layer's sectors-written statistic). */
export class CountingDevice implements BlockDevice {
  written = 0;
  constructor(readonly inner: BlockDevice) {}
  get size(): number { return this.inner.size; }
  get readOnly(): boolean { return this.inner.readOnly; }
  read(pos: number, dst: Uint8Array): void { this.inner.read(pos, dst); }
  readv(pos: number, dsts: Uint8Array[]): void {
    if (this.inner.readv) this.inner.readv(pos, dsts);
    else { let p = pos; for (const d of dsts) { this.inner.read(p, d); p += d.length; } }
  }
  write(pos: number, src: Uint8Array): void {
    this.inner.write(pos, src);
    this.written += src.length;
  }
  flush(): void { this.inner.flush(); }
  close(): void { this.inner.close(); }
}
