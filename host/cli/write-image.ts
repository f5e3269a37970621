// Mounting the image a write command names: read-write (the command is a
// write), with the global options. Whatever happens, the volume is unmounted,
// which writes everything back and leaves the image clean; each command keeps
// its own changes all-or-nothing (see put's rollback).

import type { Volume } from "../vfs/volume.js";
import { openImage, type ImageOptions } from "./image.js";

/** Cache budget of write commands: enough to batch a tree's writes; writeback keeps the dirty share bounded. */
export const WRITE_CACHE_SIZE = 64 << 20;

/** Mount options with "rw" added unless the user chose "ro" (then every write fails EROFS, as asked). */
export function readWriteOptions(mountOptions: string | undefined): string {
  const opts = (mountOptions ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  if (!opts.includes("ro") && !opts.includes("rw")) opts.push("rw");
  return opts.join(",");
}

/** Runs fn with the image mounted read-write, unmounting afterwards whatever happens. */
export function withWritableImage<T>(image: string, opts: ImageOptions, fn: (vol: Volume) => T): T {
  const vol = openImage(image, { cacheSize: WRITE_CACHE_SIZE, ...opts, mountOptions: readWriteOptions(opts.mountOptions) });
  let result: T;
  try {
    result = fn(vol);
  } catch (e) {
    try { vol.unmount(); } catch { /* the first error is the one to report */ }
    throw e;
  }
  vol.unmount();
  return result;
}
