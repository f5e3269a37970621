// Checkpointing (fs/jbd2/checkpoint.c): committed buffers are written to
// their home blocks, the writes flushed, and only then does the log tail
// move past their transaction, the journal superblock's new tail made
// durable before the freed log space is reused (jbd2_cleanup_journal_tail).
// A buffer that a running transaction holds again carries changes not yet
// committed: that transaction is committed first (jbd2_log_do_checkpoint
// does the same), so a home block never gets uncommitted bytes.

import type { Jbd2Journal } from "./journal.js";
import { jhOf, TState } from "./transaction.js";

/** jbd2_log_do_checkpoint for the oldest transaction on the checkpoint list, then the tail update. */
export function checkpointOldest(j: Jbd2Journal): void {
  const t = j.checkpoints[0];
  if (!t) return;
  for (const bh of t.cpList) {
    const jh = jhOf(bh)!;
    if (jh.transaction || jh.forgetIn) {
      j.commitRunning();
      break;
    }
  }
  const list = [...t.cpList].sort((a, b) => a.blocknr - b.blocknr);
  for (const bh of list) {
    const jh = jhOf(bh)!;
    if (jh.transaction || jh.forgetIn) throw new Error(`checkpoint of buffer ${bh.blocknr} still held by transaction ${(jh.transaction ?? jh.forgetIn)!.tid}`);
    j.bcache.writeBuffer(bh);
    t.cpList.delete(bh);
    jh.cpTransaction = undefined;
    j.detach(bh);
  }
  t.state = TState.Finished;
  j.dropIfCheckpointed(t);
  j.stats.checkpoints++;
  cleanupJournalTail(j);
}

/** Everything home (unmount, or a full log). */
export function checkpointAll(j: Jbd2Journal): void {
  while (j.checkpoints.length) checkpointOldest(j);
  cleanupJournalTail(j);
}

/**
 * jbd2_journal_get_log_tail + jbd2_cleanup_journal_tail: the tail moves to
 * the oldest transaction still needed (or to the head when none is), after
 * a flush that makes the home writes durable, with the journal superblock
 * written durably before the space counts as free. True if it moved.
 */
export function cleanupJournalTail(j: Jbd2Journal): boolean {
  let tid: number;
  let block: number;
  const oldest = j.checkpoints[0];
  if (oldest) {
    tid = oldest.tid;
    block = oldest.logStart;
  } else if (j.running) {
    tid = j.running.tid;
    block = j.head;
  } else {
    tid = j.transactionSequence;
    block = j.head;
  }
  if (tid === j.tailSequence && block === j.tail) return false;
  // With nothing left in the log all of it is free (head == tail could also read as a full log).
  const freed = oldest ? j.distance(j.tail, block) : j.last - j.first - j.free;
  if (j.flushed) {
    // Nothing was ever logged since the clean load: the on-disk tail (s_start 0) is still right.
    j.tail = block;
    j.tailSequence = tid;
    j.free += freed;
    return freed > 0;
  }
  j.writeSuperblock(tid, block, true);
  j.tail = block;
  j.tailSequence = tid;
  j.free += freed;
  return true;
}
