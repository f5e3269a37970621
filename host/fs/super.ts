// The mounted filesystem: superblock, group descriptors, caches and the
// inode layer. Mounting checks features, verifies checksums and replays the
// journal if it needs recovery.

import { BufferCache, writeDevice } from "../cache/buffer-cache.js";
import { FolioCache } from "../cache/folio-cache.js";
import type { BlockDevice } from "../device/block-device.js";
import { OverlayDevice } from "../device/overlay-device.js";
import { corrupted, Ext4Error } from "../errors.js";
import { setU32, u32 } from "../format/bytes.js";
import { COMPAT, INCOMPAT, INCOMPAT_READ_SUPPORTED, RO_COMPAT, RO_COMPAT_KNOWN } from "../format/features.js";
import type { GroupDesc } from "../format/group-desc.js";
import { Inode, INODE_FLAGS, isDir } from "../format/inode.js";
import { encodeSuperblockCounts, hasIncompat, hasRoCompat, SB_CHECKSUM_OFFSET, Superblock, SUPERBLOCK_OFFSET } from "../format/superblock.js";
import { type Handle, NoJournalHandle } from "../journal/handle.js";
import type { ParsedOptions } from "../options.js";
import { Ext4Wasm } from "../wasm/module.js";
import { Checksums } from "./csum.js";
import { Dcache, VerifiedBlocks } from "./dcache.js";
import { extentMapBlocks } from "./extents.js";
import { ES, EsShrinker } from "./extents-status.js";
import { Ext4Inode, InodeCache, shouldUseBufferedIomap, STATE } from "./inode.js";
import { loadGroupDescriptors } from "./groups.js";
import { indirectMapBlocks } from "./indirect.js";
import { readInodeRaw } from "./inode-table.js";
import { BlockMapping, MapKind } from "./mapping.js";
import { recoverOnMount, RecoveryReport } from "./recovery.js";
import { readSuperblock } from "./superblock-io.js";
import { checkWritable, cleanSuper, CountingDevice, loadJournalForWriting, setupSuper, updateSuperStats } from "./mount-rw.js";
import type { Jbd2Journal } from "../journal/journal.js";
import { setupSystemZone, type SystemZone } from "./system-zone.js";
import { evictInode } from "./evict.js";
import { orphanCleanup, type OrphanCleanupReport } from "./orphan-cleanup.js";

export const ROOT_INO = 2;
export const JOURNAL_INO = 8;
/**
 * Decoded inodes kept: one per 64 KiB of folio cache budget (4096 for the
 * default 256 MiB, 256 for a tree walk's 16 MiB). A decoded inode costs about
 * 0.8 KiB of JS heap (object, four times, its own copy of the raw bytes) and
 * a miss only a decode from an inode table block the folio cache usually
 * still holds, so the cache keeps the hot directories of path walks and no
 * more: a tree walk reads each inode once, and a big cache only ages its
 * inodes into the old generation as garbage.
 */
const INODE_CACHE_BYTES_PER_ENTRY = 64 << 10;
const INODE_CACHE_MIN = 256;
/** Cached (non-delayed) extent status entries per mount: one per 4 KiB of cache budget, about 100 bytes each. */
const ES_CACHE_BYTES_PER_ENTRY = 4096;
const ES_CACHE_MIN = 1024;
export const DEFAULT_CACHE_SIZE = 256 << 20;

export interface Ext4MountConfig {
  options: ParsedOptions;
  cacheSize?: number;
  ignoreChecksums?: boolean;
}

export class Ext4 {
  sb!: Superblock;
  groups!: GroupDesc[];
  device: BlockDevice;
  readonly wasm: Ext4Wasm;
  readonly cache: FolioCache;
  bcache!: BufferCache;
  csum!: Checksums;
  readonly readOnly: boolean;
  readonly verifyChecksums: boolean;
  metadataCsum = false;
  recovery: RecoveryReport | undefined;
  /** What the read-write mount's orphan cleanup did (undefined: read-only, nothing run). */
  orphans: OrphanCleanupReport | undefined;
  /** What the kernel would log at mount (ext4_msg) and mount anyway: for `info` and callers. */
  warnings: string[] = [];
  /** The jbd2 journal once it is loaded for writing (undefined: no journal, or read-only). */
  journal: Jbd2Journal | undefined;
  /** Read-write mounts: s_state at mount (put back at clean unmount) and the lifetime-writes base. */
  private mountState = 0;
  private kbytesAtMount = 0;
  /** Metadata blocks no file may use (block_validity), once the mount has built it. */
  systemZone: SystemZone | undefined;
  /** The in-core inodes (iget / iput). */
  readonly icache: InodeCache;
  /** The extent status shrinker: caps cached extents across this mount's inodes. */
  readonly esShrinker: EsShrinker;
  /** Name lookups already answered (see dcache.ts). */
  readonly dcache: Dcache;
  /** Metadata blocks whose checksum has been verified, by owner inode. */
  readonly verified: VerifiedBlocks;
  private inodeSeeds = new WeakMap<Inode, number>();

  private constructor(device: BlockDevice, sb: Superblock, readonly config: Ext4MountConfig) {
    this.device = device;
    this.readOnly = config.options.readOnly || device.readOnly;
    this.verifyChecksums = !config.ignoreChecksums;
    const cacheSize = config.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isInteger(cacheSize) || cacheSize < 4 << 20 || cacheSize > 3 * 2 ** 30) {
      throw new Ext4Error("EINVAL", `cacheSize must be between 4 MiB and 3 GiB (got ${cacheSize})`);
    }
    this.esShrinker = new EsShrinker(Math.max(ES_CACHE_MIN, Math.floor(cacheSize / ES_CACHE_BYTES_PER_ENTRY)));
    this.icache = new InodeCache(Math.max(INODE_CACHE_MIN, Math.floor(cacheSize / INODE_CACHE_BYTES_PER_ENTRY)), (ino) => this.readInode(ino));
    this.dcache = new Dcache(cacheSize);
    this.verified = new VerifiedBlocks(cacheSize);
    this.wasm = new Ext4Wasm(cacheSize, Math.log2(sb.blockSize));
    this.cache = new FolioCache(this.wasm, sb.blockSize);
    this.load(sb);
  }

  static mount(device: BlockDevice, config: Ext4MountConfig): Ext4 {
    const sb = readSuperblock(device);
    const readOnly = config.options.readOnly || device.readOnly;
    checkFeatures(sb, readOnly);
    if (!readOnly) checkWritable(sb, config.options);
    const fs = new Ext4(readOnly ? device : new CountingDevice(device), sb, config);
    fs.recovery = recoverOnMount(fs);
    fs.systemZone = setupSystemZone(fs);
    fs.checkRoot();
    if (!readOnly) fs.startWriting();
    return fs;
  }

  /** After replay: the journal loaded for writing (noload: none) and ext4_setup_super's superblock written. */
  private startWriting(): void {
    if (this.hasJournal && !this.config.options.noRecovery) this.journal = loadJournalForWriting(this);
    this.kbytesAtMount = this.sb.kbytesWritten;
    this.mountState = setupSuper(this, nowSeconds());
    this.commitSuper();
    this.device.flush();
    // The final iput of an unlinked inode frees it; then ext4_orphan_cleanup, made durable at once
    // (as ext4_mark_recovery_complete's journal flush after a replay).
    this.icache.evict = (inode) => evictInode(this, inode);
    this.orphans = orphanCleanup(this);
    if (this.orphans.deleted + this.orphans.truncated > 0 || this.superDirty) this.sync();
  }

  /** (Re)loads superblock-derived state; after journal replay the caches restart from the replayed image. */
  load(sb: Superblock): void {
    this.sb = sb;
    this.metadataCsum = hasRoCompat(sb, RO_COMPAT.METADATA_CSUM);
    if (this.metadataCsum && sb.checksumType !== 1) throw corrupted(`unknown metadata checksum type ${sb.checksumType}`, { block: 0 });
    const seed = hasIncompat(sb, INCOMPAT.CSUM_SEED) ? sb.checksumSeed : this.wasm.crc32c(0xffffffff, sb.uuid);
    this.csum = new Checksums(this.wasm, seed);
    if (this.metadataCsum && this.verifyChecksums) {
      const want = this.csum.superblock(sb.raw);
      if (want !== u32(sb.raw, SB_CHECKSUM_OFFSET)) throw corrupted("superblock checksum mismatch", { block: sb.blockSize === 1024 ? 1 : 0 });
    }
    this.bcache = new BufferCache(this.cache, this.device, sb.blocksCount);
    const devBlocks = Math.floor(this.device.size / sb.blockSize);
    if (devBlocks < sb.blocksCount && !this.readOnly) {
      throw new Ext4Error("EINVAL", `device is shorter than the filesystem (${devBlocks} of ${sb.blocksCount} blocks); mount read-only to salvage`);
    }
    this.warnings = [];
    this.groups = loadGroupDescriptors(sb, this.bcache, this.csum, this.verifyChecksums, this.readOnly, (m) => this.warnings.push(m));
    this.icache.clear();
    this.esShrinker.clear();
    this.dcache.clear();
    this.verified.clear();
  }

  /** Switches to a device view (journal overlay) and restarts every cache. */
  replaceDevice(device: BlockDevice): void {
    this.device = device;
    this.bcache.dropAll();
    this.cache.dropAll();
    this.load(readSuperblock(device));
  }

  overlay(blocks: Map<number, Uint8Array>): void {
    this.replaceDevice(new OverlayDevice(this.device, this.sb.blockSize, blocks));
  }

  private checkRoot(): void {
    const root = this.inode(ROOT_INO);
    if (!isDir(root)) throw corrupted("root inode is not a directory", { ino: ROOT_INO });
  }

  /**
   * The in-core inode for read-only use, without a reference (iget + iput):
   * the one object of its number for as long as anything holds it. Code that
   * changes an inode, or needs it to stay cached, takes `iget` and `iput`.
   */
  inode(ino: number): Ext4Inode {
    return this.icache.peekOrLoad(ino);
  }

  /** ext4_iget: the in-core inode, referenced; every iget is paired with one iput. */
  iget(ino: number): Ext4Inode {
    return this.icache.iget(ino);
  }

  /** iput: drops the reference iget (or newInode) gave. */
  iput(inode: Ext4Inode): void {
    this.icache.iput(inode);
  }

  /** An inode's pins changed (written, written back, reservation released): it may become evictable. */
  inodeSettled(inode: Ext4Inode): void {
    this.icache.settle(inode);
  }

  /** __ext4_iget: reads and checks the on-disk inode, and fixes its buffered path. */
  private readInode(ino: number): Ext4Inode {
    const inode = new Ext4Inode(readInodeRaw(this, ino), this.sb.inodesPerGroup, this.esShrinker);
    if (shouldUseBufferedIomap(this, inode)) inode.setState(STATE.BUFFERED_IOMAP);
    return inode;
  }

  /**
   * The inode a directory entry names, as ext4_iget with EXT4_IGET_NORMAL
   * takes it: reserved inodes below s_first_ino (but the root), the quota
   * inodes and the orphan file are no file a name may lead to
   * (is_special_ino), and an inode without links is a dangling entry.
   */
  inodeByEntry(ino: number): Ext4Inode {
    const sb = this.sb;
    if ((ino < sb.firstIno && ino !== ROOT_INO) || sb.quotaInums.includes(ino) || (sb.orphanFileInum !== 0 && ino === sb.orphanFileInum)) {
      throw corrupted(`directory entry names special inode ${ino}`, { ino });
    }
    const inode = this.inode(ino);
    // ext4_lookup: iget's ESTALE for an inode without links is "deleted inode referenced".
    if (inode.linksCount === 0) throw corrupted(`directory entry points to ${inode.mode === 0 ? "unused" : "deleted"} inode ${ino}`, { ino });
    return inode;
  }

  /** crc32c seed of an inode's own structures (extent blocks, dir blocks). */
  inodeSeed(inode: Inode): number {
    let s = this.inodeSeeds.get(inode);
    if (s === undefined) {
      s = this.csum.inodeSeed(inode.ino, inode.generation);
      this.inodeSeeds.set(inode, s);
    }
    return s;
  }

  /**
   * Maps logical blocks of an inode: the one entry point for both I/O paths.
   * The extent status tree answers first (ext4_map_blocks); what the on-disk
   * map says is cached there.
   */
  mapBlocks(inode: Inode, lblk: number, maxLen: number): BlockMapping {
    const es = inode instanceof Ext4Inode ? inode.es : undefined;
    if (es) {
      const e = es.lookup(lblk);
      if (e) {
        const len = Math.max(1, Math.min(e.lblk + e.len - lblk, maxLen));
        if (e.status === ES.WRITTEN) return { lblk, len, pblk: e.pblk + (lblk - e.lblk), kind: MapKind.Mapped };
        if (e.status === ES.UNWRITTEN) return { lblk, len, pblk: e.pblk + (lblk - e.lblk), kind: MapKind.Unwritten };
        // Delayed blocks have no disk blocks yet: to a read they are a hole (their data is in dirty folios).
        return { lblk, len, pblk: 0, kind: MapKind.Hole };
      }
    }
    let m: BlockMapping;
    if (inode.flags & INODE_FLAGS.EXTENTS) m = extentMapBlocks(this, inode, lblk, maxLen);
    else if (inode.flags & INODE_FLAGS.INLINE_DATA) throw corrupted("mapping blocks of an inline-data inode", { ino: inode.ino });
    else m = indirectMapBlocks(this, inode, lblk, maxLen);
    if (es && m.len > 0 && lblk + m.len <= 0x100000000) {
      es.cache(m.lblk, m.len, m.pblk, m.kind === MapKind.Mapped ? ES.WRITTEN : m.kind === MapKind.Unwritten ? ES.UNWRITTEN : ES.HOLE);
    }
    return m;
  }

  /** Pointer of bytes in wasm memory: cached blocks as they are, other bytes copied to scratch. */
  stage(b: Uint8Array): number {
    const mem = this.wasm.u8;
    if (b.buffer === mem.buffer) return b.byteOffset;
    mem.set(b, this.wasm.scratchPtr);
    return this.wasm.scratchPtr;
  }

  get hasJournal(): boolean { return (this.sb.featureCompat & COMPAT.HAS_JOURNAL) !== 0; }

  /**
   * ext4_journal_start: a handle for `credits` metadata blocks. Every metadata
   * change goes through one. Without a journal it only dirties buffers.
   */
  startHandle(credits: number): Handle {
    if (this.readOnly) throw new Ext4Error("EROFS", "read-only file system");
    if (this.journal) return this.journal.start(credits);
    // Without a loaded journal (no journal, or noload on a clean one) metadata is written in place, as the kernel does.
    return new NoJournalHandle(this.bcache);
  }

  /** Summary fields (free counts, orphan head, features) changed since the superblock was last written. */
  private superDirty = false;

  /** The in-memory superblock changed; ext4_commit_super writes it at the next sync. */
  markSuperDirty(): void { this.superDirty = true; }

  /**
   * ext4_commit_super: the summary fields and checksum written straight to the
   * primary superblock (the kernel writes it outside the journal too; backups
   * are left alone, as the kernel leaves them).
   */
  commitSuper(): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "read-only file system");
    const raw = encodeSuperblockCounts(this.sb);
    const counting = this.device instanceof CountingDevice ? this.device : undefined;
    // As ext4_update_super: what this mount wrote before this write, the superblock's
    // buffer counted whole (a block, as the kernel's s_sbh).
    updateSuperStats(raw, nowSeconds(), this.kbytesAtMount, counting ? counting.written : 0);
    if (this.metadataCsum) setU32(raw, SB_CHECKSUM_OFFSET, this.csum.superblock(raw));
    writeDevice(this.device, SUPERBLOCK_OFFSET, raw);
    if (counting) counting.written += Math.max(0, this.sb.blockSize - raw.length);
    // One copy of the superblock, as the kernel's s_sbh: a cached block holding it must not go stale.
    const bs = this.sb.blockSize;
    this.bcache.read(Math.floor(SUPERBLOCK_OFFSET / bs), "superblock").set(raw, SUPERBLOCK_OFFSET % bs);
    this.superDirty = false;
  }

  /** ext4_sync_fs: commits the running transaction (with a journal) or writes dirty buffers home, then the superblock. */
  sync(): void {
    if (this.readOnly) return;
    this.cache.writeback.syncAll(); // dirty file data first (sync_filesystem), through the data path's writeback
    if (this.journal) {
      this.journal.commitRunning();
      if (this.superDirty) this.commitSuper();
      if (this.journal.opts.barrier) this.device.flush();
      return;
    }
    const wrote = this.bcache.writeDirty();
    const superWritten = this.superDirty;
    if (superWritten) this.commitSuper();
    if (wrote > 0 || superWritten) this.device.flush();
  }

  /** Commits the running transaction now (jbd2_journal_force_commit); a no-op without a journal. */
  commit(): void {
    if (this.journal) this.journal.commitRunning();
  }

  /**
   * fsync's journal part (ext4_sync_file): commit transaction `tid` (the
   * inode's i_sync_tid) if it is not committed yet, else flush the device.
   * Without a journal: write dirty buffers home and flush.
   */
  syncTid(tid: number): void {
    if (this.readOnly) return;
    if (this.journal) this.journal.syncTid(tid);
    else this.sync();
  }

  unmount(): void {
    try {
      if (!this.readOnly) {
        this.cache.writeback.syncAll(); // generic_shutdown_super's sync_filesystem: file data first
        // ext4_put_super: the journal destroyed (committed, checkpointed, marked empty), then the clean superblock.
        if (this.journal) this.journal.destroy();
        else this.bcache.writeDirty();
        // An aborted journal keeps needs_recovery: the next mount replays what was committed.
        if (!this.journal?.aborted) {
          cleanSuper(this, this.mountState);
          this.commitSuper();
          this.device.flush();
        }
        this.journal = undefined;
      }
    } finally {
      this.bcache.dropAll();
      this.cache.dropAll();
      this.device.close();
    }
  }
}

function nowSeconds(): number { return Math.floor(Date.now() / 1000); }

export function checkFeatures(sb: Superblock, readOnly: boolean): void {
  if (sb.featureIncompat & INCOMPAT.JOURNAL_DEV) throw new Ext4Error("EINVAL", "this is an external journal device, not a filesystem");
  const unknown = sb.featureIncompat & ~INCOMPAT_READ_SUPPORTED;
  if (unknown) throw new Ext4Error("EOPNOTSUPP", `unsupported incompatible features 0x${(unknown >>> 0).toString(16)}: refusing to mount`);
  const unknownRo = sb.featureRoCompat & ~RO_COMPAT_KNOWN;
  if (unknownRo && !readOnly) throw new Ext4Error("EROFS", `unsupported read-only-compatible features 0x${(unknownRo >>> 0).toString(16)}: mount read-only`);
  if ((sb.featureRoCompat & RO_COMPAT.READONLY) && !readOnly) throw new Ext4Error("EROFS", "filesystem is marked read-only: mount read-only");
  if (sb.featureIncompat & INCOMPAT.BIT64 ? false : sb.blocksCount > 0xffffffff) throw corrupted("block count beyond 32 bits without the 64bit feature");
  // Byte offsets are JS numbers, exact up to 2^53 (8 PiB): past that a block would be read from the wrong place.
  if (sb.blocksCount * sb.blockSize > Number.MAX_SAFE_INTEGER) {
    throw new Ext4Error("EFBIG", `filesystem of ${sb.blocksCount} blocks of ${sb.blockSize} bytes is larger than the 8 PiB this engine addresses`);
  }
}
