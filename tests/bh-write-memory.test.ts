// The memory a write through the node:fs surface may take: the folio cache's
// arena is reserved whole at mount and never grows, and writing six times the
// cache budget keeps the cache within it (balance_dirty_pages and reclaim),
// so the engine's resident set is bounded by cacheSize plus the arena's
// per-slot metadata. bench/bh-write-rss.mjs measures the process RSS.

import { describe, expect, it } from "vitest";
import { MemoryDevice, mkfs, mount } from "../host/index.js";

describe("write memory bound", () => {
  it("6x the cache budget written through writeSync: the arena never grows and the cache stays within its budget", () => {
    const image = new Uint8Array(96 << 20);
    mkfs(new MemoryDevice(image), { blockSize: 4096 });
    const cacheSize = 8 << 20;
    const vol = mount(image, { cacheSize });
    try {
      const wasm = vol.fs.wasm.x.memory;
      const arena = wasm.buffer.byteLength;
      // The arena: the budget, plus per-slot metadata (well under 1/8 of it), plus the module's own pages.
      expect(arena).toBeLessThanOrEqual(cacheSize * 1.125 + (2 << 20));
      const chunk = new Uint8Array(1 << 20).fill(0x5a);
      const fd = vol.openSync("/big", "w");
      let maxUsed = 0;
      for (let i = 0; i < 48; i++) {
        expect(vol.writeSync(fd, chunk)).toBe(chunk.length);
        const s = vol.fs.cache.stats();
        maxUsed = Math.max(maxUsed, s.usedBytes);
        expect(wasm.buffer.byteLength).toBe(arena);
      }
      vol.fsyncSync(fd);
      vol.closeSync(fd);
      expect(maxUsed).toBeLessThanOrEqual(vol.fs.cache.stats().capacityBytes);
      expect(vol.statSync("/big").size).toBe(48 << 20);
    } finally {
      vol.unmount();
    }
  });
});
