// A fixed-capacity map that forgets its least recently used entry: O(1) for
// every operation. Entries sit in slots of preallocated arrays, chained in
// recency order through two Int32Arrays, and a Map finds a key's slot. (A Map
// alone, evicting with keys().next(), costs a scan over every deleted entry
// still in its table: the eviction showed in profiles of tree walks.)

const NIL = -1;

export class LruMap<K, V> {
  private readonly slotOf = new Map<K, number>();
  private readonly keys: (K | undefined)[];
  private readonly vals: (V | undefined)[];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NIL; // most recently used
  private tail = NIL;
  private used = 0;

  /** `onEvict` hears of entries pushed out by `set` (not of delete or clear). */
  constructor(readonly capacity: number, private readonly onEvict?: (key: K, value: V) => void) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`LruMap capacity must be a positive integer (got ${capacity})`);
    this.keys = new Array(capacity).fill(undefined);
    this.vals = new Array(capacity).fill(undefined);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
  }

  get size(): number { return this.slotOf.size; }

  /** The value, made most recently used; undefined if absent. */
  get(key: K): V | undefined {
    const s = this.slotOf.get(key);
    if (s === undefined) return undefined;
    this.toFront(s);
    return this.vals[s];
  }

  has(key: K): boolean { return this.slotOf.has(key); }

  /** The value without making it most recently used; undefined if absent. */
  peek(key: K): V | undefined {
    const s = this.slotOf.get(key);
    return s === undefined ? undefined : this.vals[s];
  }

  /** Calls `fn` with every value, in no particular order. */
  forEach(fn: (value: V, key: K) => void): void {
    for (let s = 0; s < this.used; s++) fn(this.vals[s]!, this.keys[s]!);
  }

  /** Sets the value (most recently used), evicting the least recently used entry if full. */
  set(key: K, value: V): void {
    let s = this.slotOf.get(key);
    if (s !== undefined) {
      this.vals[s] = value;
      this.toFront(s);
      return;
    }
    if (this.used < this.capacity) {
      s = this.used++;
    } else {
      s = this.tail;
      this.unlink(s);
      const k = this.keys[s]!;
      this.slotOf.delete(k);
      if (this.onEvict) this.onEvict(k, this.vals[s]!);
    }
    this.keys[s] = key;
    this.vals[s] = value;
    this.slotOf.set(key, s);
    this.linkFront(s);
  }

  delete(key: K): boolean {
    const s = this.slotOf.get(key);
    if (s === undefined) return false;
    this.unlink(s);
    this.slotOf.delete(key);
    // Keep slots [0, used) occupied: move the last one into the hole.
    const last = --this.used;
    if (s !== last) {
      const k = this.keys[last]!;
      const wasFront = this.head === last;
      const p = this.prev[last], n = this.next[last];
      this.keys[s] = k;
      this.vals[s] = this.vals[last];
      this.prev[s] = p;
      this.next[s] = n;
      if (p !== NIL) this.next[p] = s;
      if (n !== NIL) this.prev[n] = s;
      if (wasFront) this.head = s;
      if (this.tail === last) this.tail = s;
      this.slotOf.set(k, s);
    }
    this.keys[last] = undefined;
    this.vals[last] = undefined;
    return true;
  }

  clear(): void {
    this.slotOf.clear();
    this.keys.fill(undefined);
    this.vals.fill(undefined);
    this.head = this.tail = NIL;
    this.used = 0;
  }

  private unlink(s: number): void {
    const p = this.prev[s], n = this.next[s];
    if (p !== NIL) this.next[p] = n; else this.head = n;
    if (n !== NIL) this.prev[n] = p; else this.tail = p;
  }

  private linkFront(s: number): void {
    this.prev[s] = NIL;
    this.next[s] = this.head;
    if (this.head !== NIL) this.prev[this.head] = s;
    this.head = s;
    if (this.tail === NIL) this.tail = s;
  }

  private toFront(s: number): void {
    if (this.head === s) return;
    this.unlink(s);
    this.linkFront(s);
  }
}
