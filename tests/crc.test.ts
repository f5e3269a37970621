import { describe, expect, it } from "vitest";
import { sharedWasm } from "../host/wasm/module.js";

const enc = new TextEncoder();

describe("crc32c", () => {
  it("matches the standard check value", () => {
    // CRC-32C("123456789") = 0xE3069283 with the usual ~0 pre/post inversion.
    const w = sharedWasm();
    expect((~w.crc32c(0xffffffff, enc.encode("123456789"))) >>> 0).toBe(0xe3069283);
  });
  it("matches RFC 3720 vectors (32 zero bytes, 32 0xff bytes, ascending)", () => {
    const w = sharedWasm();
    const inv = (b: Uint8Array) => (~w.crc32c(0xffffffff, b)) >>> 0;
    expect(inv(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(inv(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(inv(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });
  it("is chunking-invariant across unaligned splits and long inputs", () => {
    const w = sharedWasm();
    const data = Uint8Array.from({ length: 600_000 }, (_, i) => (i * 7919) & 0xff);
    const whole = w.crc32c(0x1234, data);
    for (const cut of [1, 3, 7, 8, 4097, 300_001]) {
      const a = w.crc32c(0x1234, data.subarray(0, cut));
      expect(w.crc32c(a, data.subarray(cut))).toBe(whole);
    }
  });
});

describe("crc16", () => {
  it("matches CRC-16/ARC check value", () => {
    // CRC-16/ARC (poly 0x8005 reflected, init 0) of "123456789" = 0xBB3D.
    expect(sharedWasm().crc16(0, enc.encode("123456789"))).toBe(0xbb3d);
  });
  it("matches CRC-16/MODBUS (init 0xffff)", () => {
    expect(sharedWasm().crc16(0xffff, enc.encode("123456789"))).toBe(0x4b37);
  });
});
