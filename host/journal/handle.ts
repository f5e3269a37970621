// The one seam for metadata changes (fs/ext4/ext4_jbd2.c): every change to a
// metadata block is getWriteAccess (or getCreateAccess for a block just
// allocated), the edit, then dirtyMetadata, all inside a handle. Without a
// journal the handle only marks the buffer dirty for sync to write home; with
// one (journal/jbd2 behind the same interface) the buffer joins the running
// transaction and reaches home only through the log and the checkpoint.

import type { BufferCache } from "../cache/buffer-cache.js";
import type { BufferHead } from "../cache/buffer-head.js";

export interface Handle {
  /** True when changes go through a journal (false: ext4's no-journal mode). */
  readonly journaled: boolean;
  /** Transaction id the changes belong to (0 without a journal). */
  readonly tid: number;
  /** Before editing an existing metadata buffer (read with bread). */
  getWriteAccess(bh: BufferHead): void;
  /** Before filling a newly allocated metadata block (getblk; the caller writes every byte). */
  getCreateAccess(bh: BufferHead): void;
  /** After editing: the buffer is part of this handle's transaction. */
  dirtyMetadata(bh: BufferHead): void;
  /**
   * ext4_forget for a freed block: metadata (and data=journal data) is revoked
   * so replay cannot restore an older copy over the block's next owner.
   * `bh` is the cached buffer if any.
   */
  forget(blocknr: number, isMetadata: boolean, bh?: BufferHead): void;
  /** Credits left in this handle. */
  readonly credits: number;
  /** ext4_journal_ensure_credits: true if `n` more blocks fit, extending the handle if the transaction allows. */
  extend(n: number): boolean;
  /** Ends this handle's part of the transaction and starts a new handle with `n` credits (truncate_restart_trans). */
  restart(n: number): void;
  /**
   * Runs `fn` once this handle's transaction is durable (the jbd2 commit
   * callback: mballoc releases freed blocks there). Without a journal, now.
   */
  onCommit(fn: () => void): void;
  /** ext4_journal_stop. */
  stop(): void;
  /**
   * data=ordered (ext4_jbd2_inode_add_write): the inode has newly allocated
   * blocks whose data the commit of this transaction must write and wait on
   * before its commit block. Absent without a journal (nothing to order).
   */
  addOrderedInode?(ino: number): void;
}

/** What a filesystem with a journal offers: handles over the running transaction, and commits. */
export interface Journal {
  start(credits: number): Handle;
  /** Commits the running transaction now (no handle may be open). */
  commitRunning(): void;
  /** fsync of something last changed in `tid` (i_sync_tid): commit it if not yet committed, else flush. */
  syncTid(tid: number): void;
  /**
   * The data path's ordered-data hook: called by a commit, before its commit
   * block, with the inodes its handles named through addOrderedInode; it must
   * write their data home and wait for it (journal_submit_data_buffers).
   */
  writeOrderedData: ((inodes: number[], tid: number) => void) | undefined;
}

/** ext4 without a journal: changes are just dirty buffers, written home by sync (ext4_handle_valid is false). */
export class NoJournalHandle implements Handle {
  readonly journaled = false;
  readonly tid = 0;
  private stopped = false;

  constructor(private readonly bcache: BufferCache, public credits = Infinity) {}

  getWriteAccess(bh: BufferHead): void {
    this.live();
    if (!bh.uptodate) throw new Error(`write access to buffer ${bh.blocknr} that was never read`);
  }

  getCreateAccess(bh: BufferHead): void {
    this.live();
    // The creator writes the whole block: its old device contents are never read.
    this.bcache.setUptodate(bh);
  }

  dirtyMetadata(bh: BufferHead): void {
    this.live();
    this.bcache.markDirty(bh);
  }

  forget(blocknr: number, _isMetadata: boolean, bh?: BufferHead): void {
    this.live();
    // No log to revoke from: only the cached copy must not be written home later.
    if (bh) this.bcache.clearDirty(bh);
    void blocknr;
  }

  onCommit(fn: () => void): void { fn(); }

  extend(_n: number): boolean { return true; }
  restart(_n: number): void { this.live(); }

  stop(): void {
    this.live();
    this.stopped = true;
  }

  private live(): void {
    if (this.stopped) throw new Error("handle used after stop");
  }
}
