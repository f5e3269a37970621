// Timing primitives: one sequential pass over a file through the volume's
// fd API, one pass of plain Buffer.copy as the ceiling, a device wrapper that
// counts the bytes each pass pulls from the image, and the summary of samples.
// Timing is a hand-rolled loop around process.hrtime.bigint(): a pass is one
// long synchronous loop, which is what we want to time, without the
// per-call sampling machinery of a micro-benchmark library.

import { createHash } from "node:crypto";

const MiB = 1 << 20;

/**
 * Reads the whole file at `path` front to back with readSync(fd, buf, 0, bs)
 * through `vol`: a volume, or node:fs itself for the kernel peer (same calls)
 * into the one reused buffer. With `hash`, also returns the sha256 of the
 * bytes read (kept out of timed passes: hashing costs more than the read).
 */
export function readPass(vol, path, buf, bs, hash = false) {
  const fd = vol.openSync(path);
  const h = hash ? createHash("sha256") : undefined;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  try {
    for (;;) {
      const n = vol.readSync(fd, buf, 0, bs, null);
      if (n === 0) break;
      if (h) h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    vol.closeSync(fd);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  return { ns, bytes, sha256: h?.digest("hex") };
}

/** The same request pattern as a plain memory copy: the ceiling for any read path. */
export function memcpyPass(src, buf, bs) {
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  for (let off = 0; off < src.length; off += bs) bytes += src.copy(buf, 0, off, Math.min(off + bs, src.length));
  const ns = Number(process.hrtime.bigint() - t0);
  return { ns, bytes };
}

export const mibPerSecond = ({ ns, bytes }) => bytes / MiB / (ns / 1e9);

export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], samples };
}

/**
 * Forwards to a device and counts what is read through it, so each state can
 * be checked: a cold pass reads the file from the device, a cached pass and a
 * hole pass read (almost) nothing. Offers readv only when the inner device
 * does, so the library takes the same path as with the bare device.
 */
export function countingDevice(inner) {
  const counter = { reads: 0, bytes: 0 };
  const dev = {
    counter,
    get size() { return inner.size; },
    get readOnly() { return inner.readOnly; },
    read(pos, dst) { counter.reads++; counter.bytes += dst.length; inner.read(pos, dst); },
    write(pos, src) { inner.write(pos, src); },
    flush() { inner.flush(); },
    close() { inner.close(); },
  };
  if (typeof inner.readv === "function") {
    dev.readv = (pos, dsts) => {
      counter.reads++;
      for (const d of dsts) counter.bytes += d.length;
      inner.readv(pos, dsts);
    };
  }
  return dev;
}
