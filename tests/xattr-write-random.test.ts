// A seeded random sequence of xattr sets, replaces and removes against a
// model: flags and errors checked on every op, our read-back after every op,
// e2fsck -fn plus our reader and the kernel's getfattr every N ops.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import type { Volume } from "../host/vfs/volume.js";
import { attrToolsMissing, missingTools, runSync } from "./helpers/exec.js";
import { cloneModel, expectKernel, expectOurs, fsckClean, judge, mkfsImage, writeTree, type XattrModel } from "./helpers/xattr-model.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 as rng } from "./helpers/random.js";

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
  // system.data shares the inode body with the user's attributes.
  ["4k-256-inline", ["-b", "4096", "-I", "256", "-O", "inline_data"], 0x1d1d],
  ["4k-bigalloc", ["-b", "4096", "-I", "256", "-O", "bigalloc", "-C", "16384"], 0xb16],
];

/** File data is untouched (inline data shares the inode body with the xattrs): our reader and the kernel's. */
function expectContents(img: string): void {
  const files = FILES.filter((f) => f !== "/dir");
  const vol = mount(img, { readOnly: true });
  try {
    for (const f of files) expect((vol.readFileSync(f) as Buffer).equals(fs.readFileSync(path.join(tree, f))), `our read of ${f}`).toBe(true);
    if (!loopMountSupport().ok) return;
  } finally {
    vol.unmount();
  }
  withLoopMountSync(img, (mnt) => {
    for (const f of files) expect(fs.readFileSync(path.join(mnt, f)).equals(fs.readFileSync(path.join(tree, f))), `kernel's read of ${f}`).toBe(true);
  }, { readOnly: true });
}

/** One op of a sequence both we and the kernel run. */
interface Op { kind: "set" | "create" | "replace" | "remove"; path: string; name: string; value: Buffer }

function sequence(seed: number, n: number, bs: number): Op[] {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const out: Op[] = [];
  for (let i = 0; i < n; i++) {
    const path = pick(FILES);
    const name = pick(NAMES);
    const roll = r();
    const size = roll < 0.6 ? Math.floor(r() * 40) : roll < 0.9 ? Math.floor(r() * 400) : Math.floor(r() * bs * 0.7);
    const value = Buffer.alloc(size, Math.floor(r() * 256));
    out.push({ kind: pick(["set", "set", "set", "create", "replace", "remove", "remove"] as const), path, name, value });
  }
  return out;
}

/** The ops through setxattr(2)/removexattr(2) on a kernel mount (Python's os module passes the flags): each op's errno name or null. */
const KERNEL_RUNNER = `
import errno, json, os, sys
ops = json.load(sys.stdin)
root = sys.argv[1]
out = []
for o in ops:
    p = root + o["path"]
    try:
        if o["kind"] == "remove":
            os.removexattr(p, o["name"])
        else:
            flags = {"set": 0, "create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}[o["kind"]]
            os.setxattr(p, o["name"], bytes.fromhex(o["value"]), flags)
        out.append(None)
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(json.dumps(out))
`;

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
    expectContents(img);
    console.log(`xattr-write-random ${_n}: ${JSON.stringify(counts)}`);
    expect(counts.set ?? 0).toBeGreaterThan(100);
  });

  it.each(VARIANTS)("the kernel, given the same ops, answers each with the same error, and ends with the same xattrs (%s)", (_n, args, seed) => {
    const loop = loopMountSupport();
    if (!loop.ok) {
      console.log(`xattr-write-random: kernel differential skipped: ${loop.reason}`);
      return;
    }
    if (missingTools(["python3"], "python3")) return;
    const bs = args.includes("1024") ? 1024 : 4096;
    const ops = sequence(seed ^ 0x77, OPS, bs);
    const ours = mkfsImage(work, `diff-ours-${seed}`, tree, args);
    const theirs = `${ours}.kernel`;
    fs.copyFileSync(ours, theirs);
    const model = cloneModel(base);
    const got: (string | null)[] = [];
    const vol = mount(ours);
    try {
      for (const o of ops) {
        try {
          if (o.kind === "remove") vol.removexattr(o.path, o.name);
          else vol.setxattr(o.path, o.name, o.value, { flag: o.kind === "set" ? undefined : o.kind });
          got.push(null);
          if (o.kind === "remove") model.get(o.path)!.delete(o.name);
          else model.get(o.path)!.set(o.name, o.value);
        } catch (e) {
          if (!(e instanceof Ext4Error)) throw e;
          got.push(e.code);
        }
      }
    } finally {
      vol.unmount();
    }
    const input = JSON.stringify(ops.map((o) => ({ kind: o.kind, path: o.path, name: o.name, value: o.value.toString("hex") })));
    const kernel = withLoopMountSync(theirs, (mnt) => JSON.parse(runSync("python3", ["-c", KERNEL_RUNNER, mnt], { input }).stdout) as (string | null)[]);
    const diffs = got.map((g, i) => (g === kernel[i] ? null : `op ${i + 1} ${ops[i].kind} ${ops[i].path} ${ops[i].name} (${ops[i].value.length} bytes): ours ${g}, kernel's ${kernel[i]}`)).filter(Boolean);
    expect(diffs.slice(0, 10)).toEqual([]);
    fsckClean(ours);
    fsckClean(theirs);
    expectOurs(ours, model);
    expectKernel(ours, model);
    expectOurs(theirs, model);
    const enospc = got.filter((g) => g === "ENOSPC").length;
    console.log(`xattr-write-random ${_n}: kernel differential, ${ops.length} ops, ${got.filter(Boolean).length} errors (${enospc} ENOSPC), all equal`);
    expect(enospc).toBeGreaterThan(0);
  });
});
