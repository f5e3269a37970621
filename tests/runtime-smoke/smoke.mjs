// Runtime smoke check, run unchanged under node, deno and bun by
// tests/runtimes.test.ts: mounts one image through the BUILT bundle (dist/),
// once from a file path and once from bytes in memory, walks the tree, hashes
// every regular file and prints one JSON report on stdout. The test compares
// the report with hashes taken from the source tree, so this script only
// observes; it decides nothing.
//
//   <runtime> smoke.mjs <image-path> [--cjs] [--write-denied]
//
// --cjs also loads dist/index.cjs through createRequire and repeats the path
// mount with it (proves the CommonJS bundle). Without it the script needs
// nothing but read access to the image (Deno: --allow-read=<image dir>).
// --write-denied: the runtime may not write the image (Deno without
// --allow-write); a read-write mount must then fail with EACCES.

import * as esm from "../../dist/index.mjs";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import process from "node:process";

const [imagePath, ...flags] = process.argv.slice(2);
if (!imagePath) {
  process.stderr.write("usage: smoke.mjs <image-path> [--cjs]\n");
  process.exit(2);
}

function runtimeName() {
  if (typeof globalThis.Deno !== "undefined") return { name: "deno", version: globalThis.Deno.version.deno };
  if (typeof globalThis.Bun !== "undefined") return { name: "bun", version: globalThis.Bun.version };
  return { name: "node", version: process.versions.node };
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const join = (dir, name) => (dir === "/" ? `/${name}` : `${dir}/${name}`);

/** Walks the volume with one readdir per directory (not the recursive option), as a user would. */
function walk(vol, lib) {
  const files = {};
  const chunked = {};
  const symlinks = {};
  const dirs = [];
  const dirSizes = {};
  const visit = (dir) => {
    const entries = vol.readdirSync(dir, { withFileTypes: true });
    dirSizes[dir] = entries.length;
    for (const e of entries) {
      const p = join(dir, e.name);
      if (p === "/lost+found") continue;
      if (e.isDirectory()) {
        dirs.push(p);
        visit(p);
      } else if (e.isSymbolicLink()) {
        symlinks[p] = vol.readlinkSync(p);
      } else if (e.isFile()) {
        const data = vol.readFileSync(p);
        files[p] = sha256(data);
        // Large files also go through the fd API in odd-sized chunks, so
        // reads that straddle blocks and folios are covered too.
        if (data.length > 1 << 20) chunked[p] = { sha256: hashByFd(vol, p, 65536 + 512), ioPath: vol.ioPathOf(p) };
      }
    }
  };
  visit("/");
  const error = probeErrors(vol, lib);
  return { files, chunked, symlinks, dirs: dirs.sort(), dirSizes, error };
}

function hashByFd(vol, path, chunk) {
  const fd = vol.openSync(path);
  const buf = new Uint8Array(chunk);
  const h = createHash("sha256");
  try {
    for (;;) {
      const n = vol.readSync(fd, buf, 0, chunk, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    vol.closeSync(fd);
  }
  return h.digest("hex");
}

/** Error shape across runtimes: code, and instanceof against the same bundle's class. */
function probeErrors(vol, lib) {
  try {
    vol.readFileSync("/no/such/file");
    return { code: "no error thrown" };
  } catch (e) {
    return { code: e.code, isExt4Error: e instanceof lib.Ext4Error, isError: e instanceof Error };
  }
}

function mountAndWalk(lib, loader, source, image, mountOptions) {
  const vol = lib.mount(image, { readOnly: true, mountOptions });
  try {
    const device = vol.fs.device.constructor.name;
    return { loader, source, mountOptions, device, ...walk(vol, lib) };
  } finally {
    vol.unmount();
  }
}

function missingImageError(lib) {
  try {
    lib.mount(`${imagePath}.missing`, { readOnly: true });
    return { code: "no error thrown" };
  } catch (e) {
    return { code: e.code, isExt4Error: e instanceof lib.Ext4Error };
  }
}

function writeDeniedError(lib) {
  try {
    lib.mount(imagePath).unmount();
    return { code: "no error thrown" };
  } catch (e) {
    return { code: e.code, isExt4Error: e instanceof lib.Ext4Error };
  }
}

const mounts = [];
mounts.push(mountAndWalk(esm, "esm", "path", imagePath, "ro"));
// A plain Uint8Array (not a Buffer), as a browser-style caller would hold.
const bytes = new Uint8Array(readFileSync(imagePath));
mounts.push(mountAndWalk(esm, "esm", "bytes", bytes, "ro,buffered_iomap"));

// The package's own name goes through package.json "exports" (self-reference):
// it must land on the same module as the relative import of the bundle.
const viaName = await import("ext4wasm");

const report = {
  runtime: runtimeName(),
  exportsEsm: Object.keys(esm).sort(),
  exportsResolve: { import: viaName.mount === esm.mount },
  missingImage: missingImageError(esm),
  ...(flags.includes("--write-denied") ? { writeDenied: writeDeniedError(esm) } : {}),
  mounts,
};

if (flags.includes("--cjs")) {
  const require = createRequire(import.meta.url);
  const cjs = require("../../dist/index.cjs");
  report.exportsCjs = Object.keys(cjs).filter((k) => k !== "__esModule").sort();
  report.exportsResolve.require = require("ext4wasm") === cjs;
  report.mounts.push(mountAndWalk(cjs, "cjs", "path", imagePath, "ro,buffered_iomap"));
}

process.stdout.write(JSON.stringify(report) + "\n");
