import { describe, expect, it } from "vitest";
import { LruMap } from "../host/cache/lru.js";

describe("LruMap", () => {
  it("forgets the least recently used entry, a get counting as a use", () => {
    const m = new LruMap<number, string>(3);
    m.set(1, "a"); m.set(2, "b"); m.set(3, "c");
    expect(m.get(1)).toBe("a"); // 2 is now the oldest
    m.set(4, "d");
    expect(m.has(2)).toBe(false);
    expect([m.get(1), m.get(3), m.get(4)]).toEqual(["a", "c", "d"]);
    expect(m.size).toBe(3);
  });

  it("replaces a value in place and deletes from any position", () => {
    const m = new LruMap<string, number>(4);
    for (const [k, v] of [["a", 1], ["b", 2], ["c", 3], ["d", 4]] as const) m.set(k, v);
    m.set("a", 10); // a is newest: b c d a
    expect(m.delete("c")).toBe(true);
    expect(m.delete("c")).toBe(false);
    m.set("e", 5); m.set("f", 6); // b d a e, then f evicts b
    expect(m.has("b")).toBe(false);
    expect([m.get("d"), m.get("a"), m.get("e"), m.get("f")]).toEqual([4, 10, 5, 6]);
    m.clear();
    expect(m.size).toBe(0);
    m.set("x", 1);
    expect(m.get("x")).toBe(1);
  });

  it("matches a reference LRU under random use", () => {
    const cap = 17;
    const m = new LruMap<number, number>(cap);
    const ref = new Map<number, number>(); // insertion order = recency order
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 20000; i++) {
      const k = rnd(40);
      const op = rnd(3);
      if (op === 0) {
        const v = ref.get(k);
        if (v !== undefined) { ref.delete(k); ref.set(k, v); }
        expect(m.get(k)).toBe(v);
      } else if (op === 1) {
        ref.delete(k);
        ref.set(k, i);
        if (ref.size > cap) ref.delete(ref.keys().next().value!);
        m.set(k, i);
      } else {
        expect(m.delete(k)).toBe(ref.delete(k));
      }
      expect(m.size).toBe(ref.size);
    }
    for (const [k, v] of ref) expect(m.get(k)).toBe(v);
  });
});
