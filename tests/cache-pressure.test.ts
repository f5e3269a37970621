// Reads stay exact when the folio cache is far smaller than the data: large
// folios, readahead and metadata compete for a 4 MiB arena, on both paths.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";

let work: string;
let image: Uint8Array;
let want: Buffer;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-pressure-"));
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  // 3000 islands of 4 KiB every 16 KiB: a fragmented, sparse 48 MiB file on 1 KiB blocks.
  const fd = fs.openSync(path.join(src, "frag"), "w");
  let seed = 7;
  const island = Buffer.alloc(4096);
  for (let i = 0; i < 3000; i++) {
    for (let k = 0; k < island.length; k++) island[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    fs.writeSync(fd, island, 0, island.length, i * 16384);
  }
  fs.closeSync(fd);
  const img = path.join(work, "frag.img");
  execFileSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-d", src, img, "128M"]);
  image = new Uint8Array(fs.readFileSync(img));
  want = fs.readFileSync(path.join(src, "frag"));
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.each(["nobuffered_iomap", "buffered_iomap"])("%s under a 4 MiB cache", (mountOptions) => {
  it("serves random reads of up to 3 MiB exactly, evicting as it goes", () => {
    const v = mount(image, { readOnly: true, mountOptions, cacheSize: 4 << 20 });
    try {
      const fd = v.openSync("/frag");
      let seed = 1;
      for (let i = 0; i < 400; i++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const pos = seed % want.length;
        const len = Math.min(1 + (seed % 3_000_000), want.length - pos);
        const buf = Buffer.alloc(len);
        expect(v.readSync(fd, buf, 0, len, pos)).toBe(len);
        expect(Buffer.compare(buf, want.subarray(pos, pos + len))).toBe(0);
      }
      const st = v.fs.cache.stats();
      expect(st.evictions).toBeGreaterThan(1000);
      expect(st.usedBytes).toBeLessThanOrEqual(st.capacityBytes);
    } finally {
      v.unmount();
    }
  });
});
