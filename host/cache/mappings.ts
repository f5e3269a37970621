// Mapping ids: what an address_space is to an in-core inode. Folios are keyed
// by (mapping id, page index); an id is handed out per (inode number,
// generation) and never reused while folios remain under it, so a deleted
// inode's stale folios are never found under the number reused for a new
// one. Mapping 0 is the block device (metadata).
//
// Two kinds of users: the in-core inode opens its mapping (held: the id stays
// while held, even with no folios) and closes it when the inode is freed or
// evicted, which drops its folios; the read paths only ask for the id of
// (ino, generation) (idFor): an id nobody holds is forgotten once it has no
// folios left, so the table stays as small as the cache.

import { Ext4Error, type Ext4ErrorCode } from "../errors.js";
import type { Ext4Wasm } from "../wasm/module.js";
import { ErrSeq } from "./errseq.js";

export const DEVICE_MAPPING = 0;
/** Page-index end meaning "to the end of the mapping" (exclusive; page indexes are below 2^52). */
export const MAX_INDEX = Number.MAX_SAFE_INTEGER;
const LAST_ID = 0xfffffffe; // 0xffffffff is the wasm side's "no mapping"

export class MappingState {
  /** open() calls not yet closed. */
  holds = 0;
  /** AS_EIO / AS_ENOSPC: the legacy error bits filemap_check_errors tests and clears. */
  asError: Ext4ErrorCode | undefined = undefined;
  /** Where cyclic writeback resumes (mapping->writeback_index), a page index. */
  writebackIndex = 0;
  private err: ErrSeq | undefined = undefined;
  constructor(
    readonly id: number,
    readonly ino: number,
    readonly generation: number,
    /** Another generation of the same inode number (rare: a reused number whose old mapping lives on). */
    public next: MappingState | undefined,
  ) {}
  /** The writeback error cookie (mapping->wb_err), made when first asked for: a read-only walk makes none. */
  get wbErr(): ErrSeq { return (this.err ??= new ErrSeq()); }
}

export class Mappings {
  private readonly byIno = new Map<number, MappingState>();
  private readonly byId = new Map<number, MappingState>();
  private nextId = 1;
  private pruneAt = 4096;
  // The last idFor answer: sequential reads of one file ask for the same id on every call.
  private memoIno = -1;
  private memoGen = -1;
  private memoId = -1;

  constructor(private readonly wasm: Ext4Wasm) {
    const dev = new MappingState(DEVICE_MAPPING, 0, 0, undefined);
    dev.holds = 1;
    this.byId.set(DEVICE_MAPPING, dev);
  }

  /** The in-core inode's mapping, held until close(); the same id the read paths get for (ino, generation). */
  open(ino: number, generation: number): number {
    const st = this.stateFor(ino, generation);
    st.holds++;
    return st.id;
  }

  /**
   * Releases a hold; at the last one the mapping ends (truncate_inode_pages_final):
   * its folios are dropped, dirty ones included (write back first what must be kept),
   * and the id is never handed out for (ino, generation) again. EBUSY, with the hold
   * kept, if a folio of the mapping is still under writeback.
   */
  close(id: number): void {
    const st = this.byId.get(id);
    if (!st || id === DEVICE_MAPPING) throw new Ext4Error("EINVAL", `mapping ${id} is not open`);
    if (st.holds > 0) st.holds--;
    if (st.holds > 0) return;
    if (this.wasm.x.mappingRemoveRange(id, 0, MAX_INDEX) < 0) {
      st.holds++;
      throw new Ext4Error("EBUSY", `inode ${st.ino}: a folio is still under writeback; end it before closing the mapping`, { ino: st.ino });
    }
    this.forget(st);
  }

  /**
   * The mapping id of (ino, generation) for a read path: the held one if the
   * in-core inode has opened it, else one kept only while it has folios.
   */
  idFor(ino: number, generation: number): number {
    if (ino === this.memoIno && generation === this.memoGen) return this.memoId;
    const id = this.stateFor(ino, generation).id;
    this.memoIno = ino;
    this.memoGen = generation;
    this.memoId = id;
    return id;
  }

  /** The state of mapping `id` (errors, writeback index), or undefined if no such mapping is open. */
  get(id: number): MappingState | undefined { return this.byId.get(id); }

  /** How many mapping ids are known (held or with folios), the device's included. */
  get size(): number { return this.byId.size; }

  /** mapping_set_error: a writeback of the mapping failed. */
  setError(id: number, code: Ext4ErrorCode): void {
    const st = this.byId.get(id);
    if (!st) return;
    st.wbErr.set(code);
    st.asError = code === "ENOSPC" ? "ENOSPC" : "EIO";
  }

  /** filemap_check_errors: the legacy error bits, reported once (test and clear). */
  checkErrors(id: number): Ext4ErrorCode | undefined {
    const st = this.byId.get(id);
    if (!st) return undefined;
    const e = st.asError;
    st.asError = undefined;
    return e;
  }

  private stateFor(ino: number, generation: number): MappingState {
    const st = this.byIno.get(ino);
    for (let s = st; s; s = s.next) if (s.generation === generation) return s;
    // A different generation of this number: an inode nobody holds is a dead one, and goes with its folios.
    for (let s = st; s; s = s.next) {
      if (s.holds === 0 && this.wasm.x.mappingRemoveRange(s.id, 0, MAX_INDEX) >= 0) this.forget(s);
    }
    if (this.byId.size >= this.pruneAt) this.prune(); // before the new one: it has no folios yet either
    const fresh = new MappingState(this.allocId(), ino, generation, this.byIno.get(ino));
    this.byIno.set(ino, fresh);
    this.byId.set(fresh.id, fresh);
    return fresh;
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= LAST_ID ? 1 : id + 1;
      if (this.byId.has(id)) continue;
      // After 2^32 ids a number comes round again: whatever is still cached under it (a
      // pruned id whose reader went on creating folios) goes first, so it can never alias.
      if (this.wasm.x.mappingStat(id, 0) !== 0 && this.wasm.x.mappingRemoveRange(id, 0, MAX_INDEX) < 0) continue;
      return id;
    }
  }

  /** Forgets ids nobody holds that have no folios left: nothing can be stale under them. */
  private prune(): void {
    for (const st of this.byId.values()) {
      if (st.holds === 0 && st.id !== DEVICE_MAPPING && this.wasm.x.mappingStat(st.id, 0) === 0) this.forget(st);
    }
    this.pruneAt = Math.max(4096, this.byId.size * 2);
  }

  private forget(st: MappingState): void {
    this.byId.delete(st.id);
    let head = this.byIno.get(st.ino);
    if (head === st) {
      if (st.next) this.byIno.set(st.ino, st.next); else this.byIno.delete(st.ino);
    } else {
      while (head && head.next !== st) head = head.next;
      if (head) head.next = st.next;
    }
    if (this.memoId === st.id) this.memoIno = this.memoGen = this.memoId = -1;
  }
}
