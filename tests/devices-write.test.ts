// Gathered writes on every device, and the recording device the crash tests
// rebuild crash states from.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { OffsetDevice, writeGather } from "../host/device/block-device.js";
import { MemoryDevice } from "../host/device/memory-device.js";
import { NodeFileDevice } from "../host/device/node-file-device.js";
import { RecordingDevice } from "../host/device/recording-device.js";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-dev-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function views(seed: number, sizes: number[]): Uint8Array[] {
  return sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + k * 7 + i) & 0xff));
}

describe("gathered writes", () => {
  const sizes = [4096, 1, 8192, 511, 65536];
  const total = sizes.reduce((a, b) => a + b, 0);
  const expectAt = (bytes: Uint8Array, pos: number, vs: Uint8Array[]) => {
    let p = pos;
    for (const v of vs) {
      expect(Buffer.from(bytes.subarray(p, p + v.length)).equals(Buffer.from(v))).toBe(true);
      p += v.length;
    }
  };

  it("a file device writes the views back to back at the offset (writevSync)", () => {
    const file = path.join(work, "f.img");
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const dev = new NodeFileDevice(file, false);
    const vs = views(1, sizes);
    try {
      dev.writev(12345, vs);
      dev.flush();
    } finally {
      dev.close();
    }
    const bytes = fs.readFileSync(file);
    expectAt(bytes, 12345, vs);
    expect(bytes.subarray(0, 12345).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(12345 + total).every((b) => b === 0)).toBe(true);
  });

  it("memory and offset devices, and the per-view fallback, write the same bytes", () => {
    const a = MemoryDevice.ofSize(1 << 20);
    const b = MemoryDevice.ofSize(1 << 20);
    const vs = views(2, sizes);
    new OffsetDevice(a, 4096).writev(100, vs);
    const plain = { size: b.size, readOnly: false, read: b.read.bind(b), write: b.write.bind(b), flush() {}, close() {} };
    writeGather(plain, 4196, vs);
    expectAt(a.bytes, 4196, vs);
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
  });

  it("refuses a gathered write past the end or on a read-only device", () => {
    const m = MemoryDevice.ofSize(8192);
    expect(() => m.writev(4096, [new Uint8Array(4096), new Uint8Array(1)])).toThrow(/beyond the end/);
    expect(() => new MemoryDevice(new Uint8Array(8192), { readOnly: true }).writev(0, [new Uint8Array(1)])).toThrow(expect.objectContaining({ code: "EROFS" }));
  });
});

describe("recording device", () => {
  it("rebuilds every crash state: all writes before the last flush, any subset of those in flight", () => {
    const inner = MemoryDevice.ofSize(64 * 1024);
    const base = inner.bytes.slice();
    const rec = new RecordingDevice(inner);
    // A model of the device over time: apply the same operations to a copy.
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    for (let op = 0; op < 300; op++) {
      if (rnd(5) === 0) rec.flush();
      else if (rnd(3) === 0) rec.writev(rnd(60) * 1024, views(op, [512, 512 + rnd(2) * 1024]));
      else rec.write(rnd(63) * 1024, views(op, [1024])[0]);
    }
    expect(Buffer.from(rec.crashImage(base, rec.events.length - 1)).equals(Buffer.from(inner.bytes))).toBe(true);
    const flushes = rec.flushPoints();
    expect(flushes.length).toBeGreaterThan(20);
    for (const f of flushes) {
      // Crashing right at a flush loses nothing before it: the state is exact.
      const model = base.slice();
      for (let i = 0; i <= f; i++) { const e = rec.events[i]; if (e.kind === "write") model.set(e.data, e.pos); }
      expect(Buffer.from(rec.crashImage(base, f)).equals(Buffer.from(model))).toBe(true);
    }
    // In flight after a flush: dropping one write leaves exactly its bytes as the older state.
    const k = flushes.findIndex((f, j) => j > 5 && (flushes[j + 1] ?? Infinity) - f > 3);
    const at = flushes[k] + 3;
    const flight = rec.inFlight(at);
    expect(flight).toEqual([flushes[k] + 1, flushes[k] + 2, flushes[k] + 3]);
    const dropped = flight[flight.length - 1];
    const all = rec.crashImage(base, at);
    const some = rec.crashImage(base, at, (i) => i !== dropped);
    const e = rec.events[dropped] as { pos: number; data: Uint8Array };
    const older = rec.crashImage(base, at - 1);
    expect(Buffer.from(some.subarray(e.pos, e.pos + e.data.length)).equals(Buffer.from(older.subarray(e.pos, e.pos + e.data.length)))).toBe(true);
    expect(Buffer.from(all.subarray(e.pos, e.pos + e.data.length)).equals(Buffer.from(e.data))).toBe(true);
  });
});
