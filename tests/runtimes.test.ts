// The built bundle (dist/) under node, deno and bun: each runtime runs
// tests/runtime-smoke/smoke.mjs against one image made by mkfs.ext4 -d, and
// the hashes it reports must equal the hashes of the source tree. Also checks
// that package.json "exports"/"types"/"files" serve ESM, CJS and TypeScript
// consumers of the published package.

import { execFile, spawnSync } from "node:child_process";
import { ensureBuilt } from "./helpers/built-package.js";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SMOKE = path.join(ROOT, "tests/runtime-smoke/smoke.mjs");
const BIG_FILE_THRESHOLD = 1 << 20; // smoke.mjs re-reads files above this through openSync/readSync

// ---- the source tree and its image ------------------------------------------

/** Deterministic pseudo-random bytes (xorshift32), so a failure reproduces. */
function pseudoRandom(size: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, size);
}

const MANY_ENTRIES = 500;

function buildTree(src: string): void {
  const w = (rel: string, data: string | Uint8Array) => {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), data);
  };
  w("big.bin", pseudoRandom(3 * 1024 * 1024 + 1234, 0x9e3779b9)); // not block-aligned
  w("block-plus-one.bin", pseudoRandom(4097, 7));
  w("empty", "");
  w("hello.txt", "hello, ext4\n");
  // 2 MiB with one 4 KiB island of data in the middle: mkfs -d keeps the holes.
  const sparse = path.join(src, "sparse.bin");
  const fd = fs.openSync(sparse, "w");
  fs.writeSync(fd, pseudoRandom(4096, 11), 0, 4096, 1 << 20);
  fs.ftruncateSync(fd, 2 << 20);
  fs.closeSync(fd);
  // Long names spread the directory over several blocks (e2fsck -D then indexes it).
  for (let i = 0; i < MANY_ENTRIES; i++) {
    w(`many/entry-with-a-fairly-long-name-${String(i).padStart(4, "0")}.txt`, i % 7 === 0 ? "" : `entry ${i}\n`.repeat(i % 13));
  }
  w("nested/a/b/c/d/deep.txt", "five levels down\n");
  fs.mkdirSync(path.join(src, "nested/empty-dir"), { recursive: true });
  w("Ünïcødé/файл-日本語.txt", "non-ASCII names, UTF-8 on disk\n");
  w("naïve café.txt", "spaces and accents\n");
  fs.symlinkSync("big.bin", path.join(src, "link-to-big"));
  fs.symlinkSync("../../../big.bin", path.join(src, "nested/a/b/up-three"));
  fs.symlinkSync("no/such/target", path.join(src, "dangling"));
  // Longer than the 60 bytes an inode holds: a slow symlink with its own block.
  fs.symlinkSync(`far/${"x".repeat(120)}/away`, path.join(src, "slow-link"));
}

interface TreeExpectation {
  files: Record<string, string>;
  symlinks: Record<string, string>;
  dirs: string[];
  dirSizes: Record<string, number>;
}

/** What the image must show, taken from the host tree with node:fs. */
function expectTree(src: string): TreeExpectation {
  const out: TreeExpectation = { files: {}, symlinks: {}, dirs: [], dirSizes: {} };
  const visit = (rel: string) => {
    const names = fs.readdirSync(path.join(src, rel));
    // mkfs adds lost+found to the root.
    out.dirSizes[rel === "" ? "/" : rel] = names.length + (rel === "" ? 1 : 0);
    for (const name of names) {
      const r = `${rel}/${name}`;
      const full = path.join(src, r);
      const st = fs.lstatSync(full);
      if (st.isDirectory()) { out.dirs.push(r); visit(r); }
      else if (st.isSymbolicLink()) out.symlinks[r] = fs.readlinkSync(full, "utf8");
      else out.files[r] = createHash("sha256").update(fs.readFileSync(full)).digest("hex");
    }
  };
  visit("");
  out.dirs.sort();
  return out;
}

function makeImage(src: string, image: string): void {
  const run = (cmd: string, args: string[], ok: number[]) => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (!ok.includes(r.status ?? -1)) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  fs.writeFileSync(image, "");
  fs.truncateSync(image, 32 << 20);
  run("mkfs.ext4", ["-q", "-F", "-d", src, image], [0]);
  // Index the big directory (mkfs -d writes it linear); 1 = "fixed", as asked.
  run("e2fsck", ["-fyD", image], [0, 1]);
  run("e2fsck", ["-fn", image], [0]);
  const htree = run("debugfs", ["-R", "htree /many", image], [0]);
  if (!/Root node dump/.test(htree)) throw new Error(`/many has no htree index:\n${htree}`);
}

// ---- runtimes ----------------------------------------------------------------

function findBinary(name: string): string | undefined {
  const local = path.join(ROOT, "node_modules/.bin", name);
  if (fs.existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, name);
    if (dir && fs.existsSync(p)) return p;
  }
  return undefined;
}

interface MountReport {
  loader: "esm" | "cjs";
  source: "path" | "bytes";
  mountOptions: string;
  device: string;
  files: Record<string, string>;
  chunked: Record<string, { sha256: string; ioPath: "bh" | "iomap" }>;
  symlinks: Record<string, string>;
  dirs: string[];
  dirSizes: Record<string, number>;
  error: { code: string; isExt4Error: boolean; isError: boolean };
}

interface SmokeReport {
  runtime: { name: string; version: string };
  exportsEsm: string[];
  exportsCjs?: string[];
  exportsResolve: { import: boolean; require?: boolean };
  missingImage: { code: string; isExt4Error: boolean };
  writeDenied?: { code: string; isExt4Error: boolean };
  mounts: MountReport[];
}

function runSmoke(argv: string[]): Promise<SmokeReport> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { cwd: ROOT, encoding: "utf8", timeout: 90_000, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: "1" } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${argv.join(" ")} failed: ${err.message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
      try {
        resolve(JSON.parse(stdout) as SmokeReport);
      } catch {
        reject(new Error(`${argv.join(" ")} printed no JSON report\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
      }
    });
  });
}

let tmp: string;
let image: string;
let expected: TreeExpectation;

beforeAll(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-runtimes-"));
  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  buildTree(src);
  expected = expectTree(src);
  image = path.join(tmp, "image", "smoke.img");
  fs.mkdirSync(path.dirname(image));
  makeImage(src, image);
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function checkReport(report: SmokeReport, runtime: string, pathDevice: string, withCjs: boolean): void {
  expect(report.runtime.name).toBe(runtime);
  expect(report.exportsResolve.import).toBe(true);
  expect(report.missingImage).toEqual({ code: "ENOENT", isExt4Error: true });
  const want = [
    { loader: "esm", source: "path", mountOptions: "ro", device: pathDevice, ioPath: "bh" },
    { loader: "esm", source: "bytes", mountOptions: "ro,buffered_iomap", device: "MemoryDevice", ioPath: "iomap" },
    ...(withCjs ? [{ loader: "cjs", source: "path", mountOptions: "ro,buffered_iomap", device: pathDevice, ioPath: "iomap" }] : []),
  ];
  expect(report.mounts.map((m) => ({ loader: m.loader, source: m.source, mountOptions: m.mountOptions, device: m.device })))
    .toEqual(want.map(({ ioPath: _, ...m }) => m));
  const large = Object.keys(expected.files).filter((p) => fs.statSync(path.join(tmp, "src", p)).size > BIG_FILE_THRESHOLD);
  expect(large.sort()).toEqual(["/big.bin", "/sparse.bin"]);
  for (const [i, m] of report.mounts.entries()) {
    const label = `${runtime} ${m.loader} ${m.source}`;
    expect(m.files, label).toEqual(expected.files);
    expect(m.symlinks, label).toEqual(expected.symlinks);
    expect(m.dirs, label).toEqual(expected.dirs);
    expect(m.dirSizes, label).toEqual(expected.dirSizes);
    expect(m.error, label).toEqual({ code: "ENOENT", isExt4Error: true, isError: true });
    expect(m.chunked, label).toEqual(Object.fromEntries(large.map((p) => [p, { sha256: expected.files[p], ioPath: want[i].ioPath }])));
  }
  if (withCjs) {
    expect(report.exportsCjs).toEqual(report.exportsEsm);
    expect(report.exportsResolve.require).toBe(true);
  }
}

const denoBin = findBinary("deno");
const bunBin = findBinary("bun");
if (!denoBin) console.warn("runtimes.test: SKIPPING deno: no deno binary in node_modules/.bin or PATH");
if (!bunBin) console.warn("runtimes.test: SKIPPING bun: no bun binary in node_modules/.bin or PATH");

describe("built bundle under each runtime", () => {
  it("the source tree has what the smoke test is meant to cover", () => {
    expect(Object.keys(expected.files).length).toBeGreaterThan(MANY_ENTRIES);
    expect(expected.dirSizes["/many"]).toBe(MANY_ENTRIES);
    expect(Object.keys(expected.files).some((p) => /[^\x00-\x7f]/.test(p))).toBe(true);
    expect(Object.keys(expected.symlinks).length).toBe(4);
  });

  it("node: ESM import and CJS require of dist/ read every file", async () => {
    const report = await runSmoke([process.execPath, SMOKE, image, "--cjs"]);
    checkReport(report, "node", "NodeFileDevice", true);
  });

  it.skipIf(!denoBin)("deno: reads through DenoFileDevice with nothing but read access to the image", async () => {
    const report = await runSmoke([denoBin!, "run", `--allow-read=${path.dirname(image)}`, SMOKE, image, "--write-denied"]);
    checkReport(report, "deno", "DenoFileDevice", false);
    // A read-write mount needs --allow-write too; without it: EACCES, not EIO.
    expect(report.writeDenied).toEqual({ code: "EACCES", isExt4Error: true });
  });

  it.skipIf(!denoBin)("deno: CJS require of dist/index.cjs (needs read access to the requiring dir and dist/)", async () => {
    const allow = [path.dirname(image), path.join(ROOT, "dist"), path.dirname(SMOKE)].join(",");
    const report = await runSmoke([denoBin!, "run", `--allow-read=${allow}`, SMOKE, image, "--cjs"]);
    checkReport(report, "deno", "DenoFileDevice", true);
  });

  it.skipIf(!bunBin)("bun: ESM import and CJS require of dist/ read every file", async () => {
    const report = await runSmoke([bunBin!, "run", SMOKE, image, "--cjs"]);
    checkReport(report, "bun", "NodeFileDevice", true);
  });
});

/** dist files the given entries load through relative import/require, transitively (entries included). */
function chunksReachableFrom(entries: string[]): string[] {
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const text = fs.readFileSync(path.join(ROOT, rel), "utf8");
    for (const m of text.matchAll(/(?:from\s*|import\s*\(?\s*|require\(\s*)['"](\.\.?\/[^'"]+)['"]/g)) {
      visit(path.posix.join(path.posix.dirname(rel), m[1]));
    }
  };
  entries.forEach(visit);
  return [...seen];
}

describe("package.json as published", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

  it("exports map import/require/types to files the build makes", () => {
    const dot = pkg.exports["."];
    expect(Object.keys(dot)[0]).toBe("types"); // TypeScript takes the first matching condition
    expect(dot).toEqual({ types: "./dist/types/index.d.ts", import: "./dist/index.mjs", require: "./dist/index.cjs" });
    expect(pkg.types).toBe(dot.types);
    for (const p of [dot.types, dot.import, dot.require, pkg.main, pkg.module]) expect(fs.existsSync(path.join(ROOT, p)), p).toBe(true);
  });

  it("npm pack ships the bundles, the declarations and the CLI", () => {
    const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout)[0].files as { path: string }[]).map((f) => f.path);
    for (const p of ["dist/index.mjs", "dist/index.cjs", "dist/types/index.d.ts", "dist/types/vfs/volume.d.ts", "dist/cli.mjs", "bin/ext4wasm.mjs", "package.json"]) {
      expect(files, p).toContain(p);
    }
    expect(files.filter((p) => p.startsWith("host/") || p.startsWith("tests/") || p.startsWith("assembly/"))).toEqual([]);
    // Rollup splits code the library and the CLI share into hashed chunks:
    // every chunk an entry loads, directly or not, must ship too.
    for (const p of chunksReachableFrom(["dist/index.mjs", "dist/index.cjs", "dist/cli.mjs"])) expect(files, p).toContain(p);
  });

  it("TypeScript resolves 'ext4wasm' to dist/types for ESM and CJS consumers (module nodenext)", () => {
    const tsc = path.join(ROOT, "node_modules/.bin/tsc");
    const r = spawnSync(tsc, ["-p", path.join(ROOT, "tests/runtime-smoke/types/tsconfig.json"), "--traceResolution"], { cwd: ROOT, encoding: "utf8", maxBuffer: 256 << 20 });
    const errors = r.stdout.split("\n").filter((l) => /error TS\d+/.test(l));
    expect(errors).toEqual([]);
    expect(r.status).toBe(0);
    const resolved = r.stdout.match(/Module name 'ext4wasm' was successfully resolved to '([^']+)'/g) ?? [];
    expect(resolved.length).toBe(2); // once from the .mts consumer, once from the .cts one
    for (const line of resolved) expect(line).toContain(path.join(ROOT, "dist/types/index.d.ts"));
  });
});
