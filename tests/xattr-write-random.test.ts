// A seeded random sequence of xattr sets, replaces and removes against a
// model: flags and errors checked on every op, our read-back after every op,
// e2fsck -fn plus our reader and the kernel's getfattr every N ops.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import type { Volume } from "../host/vfs/volume.js";
import { attrToolsMissing, missingTools } from "./helpers/exec.js";
import { cloneModel, judge, mkfsImage, writeTree, type XattrModel } from "./helpers/xattr-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs") ?? attrToolsMissing();
if (missing) console.log(`xattr-write-random: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const OPS = 1000;
const CHECK_EVERY = 100;
let work: string;
let tree: string;
let base: XattrModel;

const FILES = ["/f0", "/f1", "/f2", "/f3", "/f4", "/dir", "/dir/g"];
const NAMES = ["user.a", "user.bb", "user.ccc", "user.long-name-of-an-attribute", "user.z", "trusted.t1", "trusted.t2", "security.s", "user.k1", "user.k2", "user.k3", "user.e"];

beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-xattrr-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(tree);
  base = writeTree(tree, [
    { path: "f0", data: "0", xattrs: { "user.a": Buffer.from("seed"), "user.k1": Buffer.alloc(200, 1) } },
    { path: "f1", data: "1", xattrs: { "user.bb": Buffer.alloc(700, 2) } },
    { path: "f2", data: "2", xattrs: {} },
    { path: "f3", data: "3", xattrs: { "trusted.t1": Buffer.from("t") } },
    { path: "f4", data: "", xattrs: {} },
    { path: "dir", dir: true, xattrs: { "user.z": Buffer.from("dir") } },
    { path: "dir/g", data: "g", xattrs: {} },
  ]);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** mulberry32: small, seeded, reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes all of an inode's entries and values need (the block alone holds them if this fits). */
function need(x: Map<string, Buffer>): number {
  let n = 0;
  for (const [name, v] of x) {
    const suffix = Buffer.byteLength(name) - (name.indexOf(".") + 1);
    n += ((suffix + 16 + 3) & ~3) + ((v.length + 3) & ~3);
  }
  return n;
}

const VARIANTS: [string, string[], number][] = [
  ["4k-256-csum", ["-b", "4096", "-I", "256"], 0x1234],
  ["1k-128-nocsum", ["-b", "1024", "-I", "128", "-O", "^metadata_csum"], 0xbeef],
  ["1k-256-csum", ["-b", "1024", "-I", "256"], 0x5eed],
];

d("random xattr sequence against a model", () => {
  it.each(VARIANTS)(`${OPS} seeded ops (%s)`, (_n, args, seed) => {
    const img = mkfsImage(work, `r${seed}`, tree, args);
    const model = cloneModel(base);
    const bs = args.includes("1024") ? 1024 : 4096;
    const r = rng(seed);
    const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
    const counts: Record<string, number> = {};
    let vol: Volume = mount(img);
    try {
      for (let i = 1; i <= OPS; i++) {
        const p = pick(FILES);
        const name = pick(NAMES);
        const have = model.get(p)!;
        const roll = r();
        // Mostly small values, some that need the block, a few near a block's size.
        const size = roll < 0.6 ? Math.floor(r() * 40) : roll < 0.9 ? Math.floor(r() * 400) : Math.floor(r() * bs * 0.7);
        const value = Buffer.alloc(size, Math.floor(r() * 256));
        const kind = pick(["set", "set", "set", "create", "replace", "remove", "remove"]);
        const label = `op ${i}: ${kind} ${p} ${name} (${size} bytes)`;
        let got: string | undefined;
        try {
          if (kind === "remove") vol.removexattr(p, name);
          else vol.setxattr(p, name, value, { flag: kind === "set" ? undefined : (kind as "create" | "replace") });
        } catch (e) {
          if (!(e instanceof Ext4Error)) throw e;
          got = e.code;
        }
        let want: string | undefined;
        if (kind === "remove" || kind === "replace") want = have.has(name) ? undefined : "ENODATA";
        if (kind === "create" && have.has(name)) want = "EEXIST";
        if (!want && got === "ENOSPC" && kind !== "remove") {
          // ENOSPC only when the attributes could not all fit in the block by themselves.
          const after = new Map(have);
          after.set(name, value);
          expect(32 + need(after) + 4, `${label}: ENOSPC although everything fits one block`).toBeGreaterThan(bs);
          want = "ENOSPC";
        }
        expect(got, label).toBe(want);
        counts[got ?? kind] = (counts[got ?? kind] ?? 0) + 1;
        if (!got) {
          if (kind === "remove") have.delete(name);
          else have.set(name, value);
        }
        // Our own read-back of that file, every op.
        const names = vol.listxattr(p).sort();
        expect(names, label).toEqual([...have.keys()].sort());
        for (const n of names) expect(vol.getxattr(p, n).equals(have.get(n)!), `${label}: ${n}`).toBe(true);
        if (i % CHECK_EVERY === 0) {
          vol.unmount();
          judge(img, model);
          vol = mount(img);
        }
      }
    } finally {
      vol.unmount();
    }
    judge(img, model);
    console.log(`xattr-write-random ${_n}: ${JSON.stringify(counts)}`);
    expect(counts.set ?? 0).toBeGreaterThan(100);
  });
});
