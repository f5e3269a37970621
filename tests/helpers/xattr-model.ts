// xattr write tests: images from a host tree with user.* xattrs, a model of
// what every file should carry, and the three judges: e2fsck -fn, our own
// read API after a remount, and the kernel's getfattr over a loop mount.

import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { mount } from "../../host/index.js";
import { runSync } from "./exec.js";
import { mkfsEnv } from "./images.js";
import { loopMountSupport, withLoopMountSync } from "./kernel.js";

/** path -> xattr name -> value. */
export type XattrModel = Map<string, Map<string, Buffer>>;

export interface TreeFile { path: string; dir?: boolean; data?: string; xattrs: Record<string, Buffer> }

/** Writes `files` under `root`, xattrs set with setfattr (hex values, so any bytes survive). */
export function writeTree(root: string, files: TreeFile[]): XattrModel {
  const model: XattrModel = new Map();
  for (const f of files) {
    const p = path.join(root, f.path);
    if (f.dir) fs.mkdirSync(p, { recursive: true });
    else fs.writeFileSync(p, f.data ?? "");
    for (const [name, value] of Object.entries(f.xattrs)) runSync("setfattr", ["-n", name, "-v", `0x${value.toString("hex")}`, p]);
    model.set(`/${f.path}`, new Map(Object.entries(f.xattrs)));
  }
  return model;
}

export function cloneModel(m: XattrModel): XattrModel {
  return new Map([...m].map(([p, x]) => [p, new Map(x)]));
}

/** mkfs.ext4 without a journal (until the jbd2 writer lands), deterministic. */
export function mkfsImage(work: string, name: string, tree: string, args: string[], size = "16M"): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-U", "6d0e4b2a-61b1-4c1e-9d5a-0a0b0c0d0e0f", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", ...args, "-d", tree, img, size], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" }, okCodes: [0] });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

export function fsckClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `e2fsck -fn ${img}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

function sorted(x: Map<string, Buffer>): [string, string][] {
  return [...x].map(([k, v]): [string, string] => [k, v.toString("hex")]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Our read API after a fresh read-only mount equals the model. */
export function expectOurs(img: string, model: XattrModel): void {
  const vol = mount(img, { readOnly: true });
  try {
    for (const [p, want] of model) {
      const names = vol.listxattr(p, { noFollow: true });
      const got = new Map(names.map((n) => [n, vol.getxattr(p, n, { noFollow: true })] as [string, Buffer]));
      expect(sorted(got), `our xattrs of ${p}`).toEqual(sorted(want));
    }
  } finally {
    vol.unmount();
  }
}

let kernelNote = false;

/** getfattr -d -m - over a read-only loop mount equals the model; skipped with its reason printed. */
export function expectKernel(img: string, model: XattrModel): boolean {
  const s = loopMountSupport();
  if (!s.ok) {
    if (!kernelNote) console.log(`xattr-write: kernel comparison skipped: ${s.reason}`);
    kernelNote = true;
    return false;
  }
  withLoopMountSync(img, (mnt) => {
    for (const [p, want] of model) {
      const r = runSync("getfattr", ["--absolute-names", "-h", "-d", "-m", "-", "-e", "hex", path.join(mnt, p)]);
      const got = new Map<string, Buffer>();
      for (const line of r.stdout.split("\n")) {
        const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line.trim());
        if (m) got.set(m[1], Buffer.from(m[2], "hex"));
      }
      expect(sorted(got), `kernel's xattrs of ${p}`).toEqual(sorted(want));
    }
  }, { readOnly: true });
  return true;
}

/** All three judges. */
export function judge(img: string, model: XattrModel): void {
  fsckClean(img);
  expectOurs(img, model);
  expectKernel(img, model);
}

/** debugfs's view of one inode's xattr block number (0: none). */
export function fileAcl(img: string, p: string): number {
  const out = runSync("debugfs", ["-R", `stat ${p}`, img]).stdout;
  const m = /File ACL: (\d+)/.exec(out);
  return m ? Number(m[1]) : 0;
}
