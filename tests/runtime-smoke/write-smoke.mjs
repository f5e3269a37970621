// Write smoke check, run unchanged under node, deno and bun by
// tests/runtimes-write.test.ts: mounts an empty image read-write through the
// BUILT bundle (dist/), writes a small tree through the node:fs-style API
// (mkdir -p, writeFile, an fd written in odd chunks, appendFile, symlink,
// link, rename, unlink, truncate, chmod, utimes), fsyncs, unmounts, and prints
// one JSON report. The test judges the image (e2fsck, our reader, the kernel).
//
//   <runtime> write-smoke.mjs <image-path>

import * as esm from "../../dist/index.mjs";
import process from "node:process";

const [imagePath] = process.argv.slice(2);

function runtimeName() {
  if (typeof globalThis.Deno !== "undefined") return "deno";
  if (typeof globalThis.Bun !== "undefined") return "bun";
  return "node";
}

/** Deterministic bytes (xorshift32): the test makes the same ones. */
function bytes(size, seed) {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const vol = esm.mount(imagePath);
const steps = [];
try {
  vol.mkdirSync("/tree/a/b", { recursive: true });
  vol.writeFileSync("/tree/hello.txt", "hello from " + runtimeName() + "\n");
  const big = bytes(3 * 1024 * 1024 + 123, 7);
  const fd = vol.openSync("/tree/a/big.bin", "w", 0o600);
  for (let off = 0; off < big.length; ) off += vol.writeSync(fd, big, off, Math.min(65536 + 511, big.length - off), null);
  vol.fsyncSync(fd);
  vol.closeSync(fd);
  vol.appendFileSync("/tree/a/b/log", "one\n");
  vol.appendFileSync("/tree/a/b/log", "two\n");
  vol.symlinkSync("../hello.txt", "/tree/a/link");
  vol.linkSync("/tree/hello.txt", "/tree/a/b/hard");
  vol.writeFileSync("/tree/tmp", "replace me");
  vol.renameSync("/tree/tmp", "/tree/renamed");
  vol.writeFileSync("/tree/gone", "x");
  vol.unlinkSync("/tree/gone");
  vol.truncateSync("/tree/renamed", 7);
  vol.chmodSync("/tree/a/b/log", 0o640);
  vol.utimesSync("/tree/hello.txt", 1000000000, 1000000001);
  vol.sync();
  steps.push("written");
} catch (e) {
  steps.push(`error ${e.code}: ${e.message}`);
} finally {
  vol.unmount();
}
process.stdout.write(JSON.stringify({ runtime: runtimeName(), steps }) + "\n");
