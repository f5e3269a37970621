// Transactions and the jbd2-backed Handle (fs/jbd2/transaction.c). One
// transaction runs at a time; handles join it with credits (the worst-case
// number of blocks they will dirty) and leave it with stop. The engine is
// synchronous: a commit only ever runs when no handle is open (asserted in
// commit.ts), so a buffer never changes while its transaction is being
// written to the log and no frozen copies are needed.

import type { BufferHead } from "../cache/buffer-head.js";
import { BH } from "../cache/buffer-head.js";
import { Ext4Error } from "../errors.js";
import type { Handle } from "./handle.js";
import type { Jbd2Journal } from "./journal.js";
import { RevokeTable } from "./revoke.js";

/** The journal's record of a buffer (jbd2's journal_head), kept in bh.jh. */
export interface JournalHead {
  /** The running transaction that has write access to it (b_transaction). */
  transaction?: Transaction;
  /** The committed transaction whose checkpoint must still write it home (b_cp_transaction). */
  cpTransaction?: Transaction;
  /** Forgotten in this running transaction: dropped from checkpoint when it commits (BJ_Forget). */
  forgetIn?: Transaction;
}

export function jhOf(bh: BufferHead): JournalHead | undefined {
  return bh.jh as JournalHead | undefined;
}

export const enum TState { Running, Committed, Finished }

export class Transaction {
  state = TState.Running;
  /** Open handles (t_updates). */
  updates = 0;
  /** Credits of open handles plus blocks already taken (t_outstanding_credits). */
  outstanding = 0;
  /** Metadata buffers dirtied in this transaction, in first-dirtied order (BJ_Metadata). */
  readonly buffers = new Set<BufferHead>();
  /** Buffers given write access but perhaps never dirtied (BJ_Reserved). */
  readonly reserved = new Set<BufferHead>();
  /** Buffers forgotten while an older transaction still had them to checkpoint (BJ_Forget). */
  readonly forgets = new Set<BufferHead>();
  readonly revokes = new RevokeTable();
  /** Revoke blocks charged to `outstanding` so far. */
  revokeBlocks = 0;
  /** Commit callbacks (t_private_list): run once the commit block is durable. */
  readonly callbacks: (() => void)[] = [];
  /** Inodes whose data must reach home before the commit block (data=ordered, t_inode_list). */
  readonly orderedInodes = new Set<number>();
  /** Committed buffers still to be written home (t_checkpoint_list). */
  readonly cpList = new Set<BufferHead>();
  /** First log block of this transaction, once committed (t_log_start). */
  logStart = 0;
  /** Log blocks the commit wrote. */
  logBlocks = 0;

  constructor(readonly tid: number, readonly started: number) {}
}

export class JournalHandle implements Handle {
  readonly journaled = true;
  private t: Transaction;
  private left: number;
  private stopped = false;

  constructor(private readonly j: Jbd2Journal, t: Transaction, credits: number) {
    this.t = t;
    this.left = credits;
  }

  get tid(): number { return this.t.tid; }
  get credits(): number { return this.left; }
  /** The transaction this handle is part of (for the journal's own code and tests). */
  get transaction(): Transaction { return this.t; }

  getWriteAccess(bh: BufferHead): void {
    this.live();
    this.writable();
    if (!bh.uptodate) throw new Error(`write access to buffer ${bh.blocknr} that was never read`);
    this.j.fileReserved(this.t, bh);
  }

  getCreateAccess(bh: BufferHead): void {
    this.live();
    this.writable();
    // The creator writes the whole block: its old contents are never read.
    this.j.bcache.setUptodate(bh);
    bh.set(BH.NEW);
    this.j.fileReserved(this.t, bh);
  }

  dirtyMetadata(bh: BufferHead): void {
    this.live();
    this.writable();
    const jh = jhOf(bh);
    if (!jh || jh.transaction !== this.t) throw new Error(`dirtyMetadata of buffer ${bh.blocknr} without write access in transaction ${this.t.tid}`);
    if (!this.t.buffers.has(bh)) {
      // jbd2_journal_dirty_metadata: the first dirtying in a transaction takes a credit.
      if (this.left <= 0) throw new Error(`handle credits exceeded dirtying buffer ${bh.blocknr} (transaction ${this.t.tid})`);
      this.left--;
      this.t.buffers.add(bh);
    }
    bh.set(BH.JBDDIRTY);
  }

  forget(blocknr: number, isMetadata: boolean, bh?: BufferHead): void {
    this.live();
    const b = bh ?? this.j.bcache.peek(blocknr);
    // __ext4_forget: data=journal mounts and plain data are forgotten, never revoked.
    if (this.j.opts.dataJournal || !isMetadata) {
      if (b) this.giveBack(this.j.forgetBuffer(this.t, b));
      return;
    }
    if (b) {
      if (b.test(BH.REVOKED) && this.t.revokes.blocks.has(blocknr)) throw new Ext4Error("EIO", `block ${blocknr} revoked twice without being journaled in between`, { block: blocknr });
      this.giveBack(this.j.forgetBuffer(this.t, b));
      b.set(BH.REVOKED);
    }
    const recBlocks = this.j.revoke(this.t, blocknr);
    // A new revoke block is charged to the handle when it has credits left (h_revoke_credits).
    if (recBlocks > 0 && this.left > 0) this.left--; else this.t.outstanding += recBlocks;
  }

  extend(n: number): boolean {
    this.live();
    if (this.left >= n) return true;
    const want = n - this.left;
    if (!this.j.canExtend(this.t, want)) return false;
    this.t.outstanding += want;
    this.left += want;
    return true;
  }

  restart(n: number): void {
    this.live();
    const old = this.t;
    this.release();
    // jbd2__journal_restart asks for the commit of the old transaction.
    try {
      if (old.updates === 0 && this.j.running === old) this.j.commitRunning();
      this.t = this.j.join(n);
    } catch (e) {
      this.stopped = true; // its part of the old transaction is already given back
      throw e;
    }
    this.left = n;
  }

  onCommit(fn: () => void): void {
    this.live();
    this.t.callbacks.push(fn);
  }

  /** jbd2_journal_inode_ranges_for_write: the inode has ordered data the commit must write first. */
  addOrderedInode(ino: number): void {
    this.live();
    this.t.orderedInodes.add(ino);
  }

  stop(): void {
    this.live();
    this.stopped = true;
    const t = this.t;
    this.release();
    if (t.updates === 0) this.j.handleStopped(t);
  }

  private release(): void {
    this.t.updates--;
    this.t.outstanding -= this.left;
    this.left = 0;
  }

  private giveBack(credit: boolean): void {
    if (credit) this.left++;
  }

  /** jbd2: an aborted journal takes no more changes (the kernel's -EROFS from get_write_access). */
  private writable(): void {
    if (this.j.aborted) throw new Ext4Error("EROFS", "the journal has aborted: read-only file system");
  }

  private live(): void {
    if (this.stopped) throw new Error("handle used after stop");
  }
}
