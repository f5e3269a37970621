// Extended attribute writes (fs/xattr-write.ts): set, replace and remove in
// the inode body and in the xattr block, with the kernel's flags and errors.
// Every case unmounts, then e2fsck -fn must be clean, our read API after a
// remount must equal the model, and so must the kernel's getfattr.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageOutsideMountFields } from "./helpers/mount-fields.js";
import { Ext4Error, mount } from "../host/index.js";
import type { Volume } from "../host/vfs/volume.js";
import type { Ext4 } from "../host/fs/super.js";
import { parseXattrRecords, xattrBlockHash, xattrHashEntry } from "../host/format/xattr.js";
import { attrToolsMissing, missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { cloneModel, expectKernel, expectOurs, fileAcl, fsckClean, judge, mkfsImage, writeTree, type XattrModel } from "./helpers/xattr-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs") ?? attrToolsMissing();
if (missing) console.log(`xattr-write: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const A = (n: number, c = 0x41) => Buffer.alloc(n, c);
let work: string;
let tree: string;
let base: XattrModel;

beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-xattrw-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(tree);
  base = writeTree(tree, [
    { path: "a", data: "a\n", xattrs: { "user.one": Buffer.from("hello"), "user.two": A(300) } },
    { path: "b", data: "b\n", xattrs: { "user.x": Buffer.from("same") } },
    { path: "c", data: "c\n", xattrs: {} },
    { path: "d", dir: true, xattrs: { "user.dir": Buffer.from("v") } },
    { path: "e", data: "", xattrs: {} },
  ]);
  fs.symlinkSync("a", path.join(tree, "l"));
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// Block size, inode size, checksums: 128-byte inodes keep every xattr in a block.
const VARIANTS: [string, string[]][] = [
  ["4k-256-csum", ["-b", "4096", "-I", "256"]],
  ["4k-128-csum", ["-b", "4096", "-I", "128"]],
  ["1k-256-nocsum", ["-b", "1024", "-I", "256", "-O", "^metadata_csum"]],
  ["1k-128-nocsum", ["-b", "1024", "-I", "128", "-O", "^metadata_csum"]],
];

let seq = 0;
function withImage(variant: string[], fn: (vol: Volume, model: XattrModel, img: string) => void, o: { unchanged?: boolean } = {}): { img: string; model: XattrModel } {
  const img = mkfsImage(work, `img${seq++}`, tree, variant);
  const before = imageOutsideMountFields(img);
  const model = cloneModel(base);
  const vol = mount(img);
  try {
    fn(vol, model, img);
  } finally {
    vol.unmount();
  }
  if (o.unchanged) expect(imageOutsideMountFields(img).equals(before), "refused calls wrote nothing (but the mount's own fields)").toBe(true);
  judge(img, model);
  return { img, model };
}

function set(vol: Volume, model: XattrModel, p: string, name: string, value: Buffer, flag?: "create" | "replace"): void {
  vol.setxattr(p, name, value, { flag });
  model.get(p)!.set(name, value);
}

function remove(vol: Volume, model: XattrModel, p: string, name: string): void {
  vol.removexattr(p, name);
  model.get(p)!.delete(name);
}

function code(fn: () => void): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof Ext4Error) return e.code;
    throw e;
  }
  return undefined;
}

d("xattr writes", () => {
  it("the judges can fail: a model one byte off is caught by our reader and by the kernel's getfattr", () => {
    const img = mkfsImage(work, `judge${seq++}`, tree, VARIANTS[0][1]);
    const wrong = cloneModel(base);
    wrong.get("/a")!.set("user.one", Buffer.from("hellp"));
    expect(() => expectOurs(img, wrong)).toThrow(/our xattrs of \/a/);
    if (loopMountSupport().ok) expect(() => expectKernel(img, wrong)).toThrow(/kernel's xattrs of \/a/);
    expectKernel(img, base);
  });

  it.each(VARIANTS)("flags, names and sizes have the kernel's errors, and a refused call writes nothing (%s)", (_n, args) => {
    withImage(args, (vol) => {
      expect(code(() => vol.setxattr("/a", "user.one", "x", { flag: "create" }))).toBe("EEXIST");
      expect(code(() => vol.setxattr("/a", "user.none", "x", { flag: "replace" }))).toBe("ENODATA");
      expect(code(() => vol.removexattr("/a", "user.none"))).toBe("ENODATA");
      expect(code(() => vol.setxattr("/a", `user.${"n".repeat(251)}`, "x"))).toBe("ERANGE"); // 256 bytes with the prefix
      expect(code(() => vol.setxattr("/a", "user.", "x"))).toBe("EINVAL");
      expect(code(() => vol.setxattr("/a", "bogus.x", "x"))).toBe("EOPNOTSUPP");
      expect(code(() => vol.setxattr("/a", "system.foo", "x"))).toBe("EOPNOTSUPP");
      expect(code(() => vol.setxattr("/a", "user.big", A(65537)))).toBe("E2BIG");
      const e = (() => { try { vol.setxattr("/a", "user.one", "x", { flag: "create" }); } catch (x) { return x as Ext4Error; } })()!;
      expect([e.syscall, e.path]).toEqual(["setxattr", "/a"]);
      expect(code(() => vol.setxattr("/a", "user.huge", A(args.includes("1024") ? 1100 : 4100)))).toBe("ENOSPC"); // larger than a block
    }, { unchanged: true });
  });

  it.each(VARIANTS)("our entry hashes equal mke2fs's, entry and block hashes the kernel's (%s)", (_n, args) => {
    const img = mkfsImage(work, `hash${seq++}`, tree, args);
    const kernel = loopMountSupport().ok;
    if (kernel) {
      // The kernel writes a block of its own (mke2fs leaves h_hash 0: never shared).
      withLoopMountSync(img, (mnt) => {
        runSync("setfattr", ["-n", "user.k1", "-v", "kernel", path.join(mnt, "c")]);
        runSync("setfattr", ["-n", "trusted.k2", "-v", `0x${A(700, 0x5a).toString("hex")}`, path.join(mnt, "c")]);
        runSync("setfattr", ["-n", "user.k3", "-v", `0x${A(9, 0xe9).toString("hex")}`, path.join(mnt, "c")]);
      });
    }
    const vol = mount(img, { readOnly: true });
    try {
      const f = (vol as unknown as { fs: Ext4 }).fs;
      let hashed = 0;
      for (const p of ["/a", "/b", "/c", "/d"]) {
        const inode = f.inode(vol.statSync(p).ino);
        if (!inode.fileAcl) continue;
        const b = f.bcache.readCopy(inode.fileAcl);
        const recs = parseXattrRecords(b, 32, 0, b.length, {});
        for (const r of recs) expect(r.hash, `${p} ${r.nameIndex}.${Buffer.from(r.name).toString()}`).toBe(xattrHashEntry(r.name, r.value));
        const stored = new DataView(b.buffer).getUint32(12, true);
        if (stored !== 0) {
          expect(stored, `h_hash of ${p}`).toBe(xattrBlockHash(recs));
          hashed++;
        }
      }
      if (kernel) expect(hashed).toBeGreaterThan(0);
    } finally {
      vol.unmount();
    }
  });

  it("xattr_permission: user.* only on files and directories, no ACL on a symlink, nothing on an immutable inode", () => {
    withImage(VARIANTS[0][1], (vol, model) => {
      expect(code(() => vol.setxattr("/l", "user.x", "1", { noFollow: true }))).toBe("EPERM");
      expect(code(() => vol.setxattr("/l", "system.posix_acl_access", Buffer.from("02000000", "hex"), { noFollow: true }))).toBe("EOPNOTSUPP");
      model.set("/l", new Map([["trusted.t", Buffer.from("on the link")]]));
      vol.setxattr("/l", "trusted.t", "on the link", { noFollow: true });
      vol.setxattr("/l", "user.via", "followed"); // follows to /a
      model.get("/a")!.set("user.via", Buffer.from("followed"));
    });
    const img = mkfsImage(work, `imm${seq++}`, tree, VARIANTS[0][1]);
    expect(runSync("debugfs", ["-w", "-R", "sif /e flags 0x80010", img]).code).toBe(0);
    const vol = mount(img);
    try {
      expect(code(() => vol.setxattr("/e", "user.x", "1"))).toBe("EPERM");
      expect(code(() => vol.removexattr("/a", "user.none"))).toBe("ENODATA");
    } finally {
      vol.unmount();
    }
  });

  it("a filesystem without ext_attr gets the feature with its first xattr (ext4_xattr_update_super_block); promises work too", async () => {
    const bare = path.join(work, "bare");
    fs.mkdirSync(bare, { recursive: true });
    fs.writeFileSync(path.join(bare, "f"), "f");
    const img = mkfsImage(work, `noea${seq++}`, bare, ["-b", "4096", "-I", "256", "-O", "^ext_attr"]);
    expect(runSync("dumpe2fs", ["-h", img]).stdout).not.toMatch(/ext_attr/);
    const vol = mount(img);
    try {
      await vol.promises.setxattr("/f", "user.first", "1");
      expect((await vol.promises.getxattr("/f", "user.first")).toString()).toBe("1");
    } finally {
      vol.unmount();
    }
    expect(runSync("dumpe2fs", ["-h", img]).stdout).toMatch(/Filesystem features:.*ext_attr/);
    judge(img, new Map([["/f", new Map([["user.first", Buffer.from("1")]])]]));
  });

  it("errors come in the kernel's order (name and size, path, read-only, permission, namespace), each the kernel's", () => {
    type Case = { path: string; name: string; size?: number; flag?: "create" | "replace"; remove?: boolean; noFollow?: boolean; ro?: boolean };
    const long = `user.${"n".repeat(251)}`;
    const cases: Case[] = [
      { path: "/a", name: long }, { path: "/nonexistent", name: long }, { path: "/nonexistent", name: "user.x" },
      { path: "/a", name: "user.big", size: 65537 }, { path: "/nonexistent", name: "user.big", size: 65537 },
      { path: "/e", name: "bogus.x" }, { path: "/e", name: "user.x" }, { path: "/e", name: "user.x", remove: true },
      { path: "/a", name: "bogus.x" }, { path: "/a", name: "user." }, { path: "/a", name: "system.foo" },
      { path: "/l", name: "user.x", noFollow: true }, { path: "/l", name: "bogus.x", noFollow: true },
      { path: "/a", name: "user.none", flag: "replace" }, { path: "/a", name: "user.none", remove: true },
      { path: "/a", name: "user.one", flag: "create" }, { path: "/a", name: "trusted.x", size: 10 },
      { path: "/a", name: "bogus.x", ro: true }, { path: "/a", name: "user.big", size: 65537, ro: true },
      { path: "/e", name: "user.x", ro: true }, { path: "/a", name: "user.none", remove: true, ro: true },
      { path: "/nonexistent", name: "user.x", ro: true }, { path: "/a", name: "user.", ro: true },
    ];
    const img = mkfsImage(work, `order${seq++}`, tree, VARIANTS[0][1]);
    expect(runSync("debugfs", ["-w", "-R", "sif /e flags 0x80010", img]).code).toBe(0);
    const kimg = `${img}.kernel`;
    fs.copyFileSync(img, kimg);
    const ours: (string | undefined)[] = [];
    for (const ro of [false, true]) {
      const vol = mount(img, { readOnly: ro });
      try {
        for (const c of cases) {
          if (!!c.ro !== ro) continue;
          ours.push(code(() => (c.remove ? vol.removexattr(c.path, c.name, { noFollow: c.noFollow }) : vol.setxattr(c.path, c.name, A(c.size ?? 1), { flag: c.flag, noFollow: c.noFollow }))));
        }
      } finally {
        vol.unmount();
      }
    }
    expect(ours).toEqual(["ERANGE", "ERANGE", "ENOENT", "E2BIG", "E2BIG", "EPERM", "EPERM", "EPERM", "EOPNOTSUPP", "EINVAL", "EOPNOTSUPP", "EPERM", "EOPNOTSUPP",
      "ENODATA", "ENODATA", "EEXIST", undefined, "EROFS", "E2BIG", "EROFS", "EROFS", "ENOENT", "EROFS"]);
    const loop = loopMountSupport();
    if (!loop.ok) {
      console.log(`xattr-write: the kernel's error table skipped: ${loop.reason}`);
      return;
    }
    if (missingTools(["python3"], "python3")) return;
    const runner = `
import errno, json, os, sys
out = []
for c in json.load(sys.stdin):
    p = sys.argv[1] + c["path"]
    try:
        if c.get("remove"):
            os.removexattr(p, c["name"], follow_symlinks=not c.get("noFollow"))
        else:
            flags = {"create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}.get(c.get("flag"), 0)
            os.setxattr(p, c["name"], b"A" * c.get("size", 1), flags, follow_symlinks=not c.get("noFollow"))
        out.append(None)
    except OSError as e:
        out.append("EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno])
print(json.dumps(out))
`;
    const kernel: (string | null)[] = [];
    for (const ro of [false, true]) {
      const input = JSON.stringify(cases.filter((c) => !!c.ro === ro));
      kernel.push(...withLoopMountSync(kimg, (mnt) => JSON.parse(runSync("python3", ["-c", runner, mnt], { input }).stdout) as (string | null)[], { readOnly: ro }));
    }
    expect(ours.map((c) => c ?? null)).toEqual(kernel);
  });

  it("a value the same as the stored one writes nothing, not even ctime", () => {
    const img = mkfsImage(work, `same${seq++}`, tree, VARIANTS[0][1]);
    const before = imageOutsideMountFields(img);
    const vol = mount(img);
    try {
      vol.setxattr("/a", "user.one", "hello");
      vol.setxattr("/a", "user.two", A(300), { flag: "replace" });
    } finally {
      vol.unmount();
    }
    expect(imageOutsideMountFields(img).equals(before)).toBe(true);
  });

  it("a read-only mount refuses with EROFS and writes nothing", () => {
    const img = mkfsImage(work, `ro${seq++}`, tree, VARIANTS[0][1]);
    const before = fs.readFileSync(img);
    const vol = mount(img, { readOnly: true });
    try {
      expect(code(() => vol.setxattr("/a", "user.new", "x"))).toBe("EROFS");
      expect(code(() => vol.removexattr("/a", "user.one"))).toBe("EROFS");
    } finally {
      vol.unmount();
    }
    expect(fs.readFileSync(img).equals(before)).toBe(true);
  });

  it.each(VARIANTS.filter((v) => v[1].includes("256")))("in the inode body: set, replace (same and other sizes), remove (%s)", (_n, args) => {
    const { img } = withImage(args, (vol, model) => {
      set(vol, model, "/c", "user.new", Buffer.from("abc"));
      set(vol, model, "/c", "user.new", Buffer.from("xyz"), "replace"); // same padded size
      set(vol, model, "/c", "user.new", Buffer.from("longer value"), "replace");
      set(vol, model, "/c", "user.empty", Buffer.alloc(0), "create");
      set(vol, model, "/d", "user.dir2", Buffer.from("w"));
      set(vol, model, "/e", "trusted.t", Buffer.from("t"));
      set(vol, model, "/e", "security.s", Buffer.from("s"));
      remove(vol, model, "/d", "user.dir");
      remove(vol, model, "/b", "user.x");
    });
    // All of it fits in the inodes: no block was needed.
    expect(fileAcl(img, "/c")).toBe(0);
    expect(fileAcl(img, "/e")).toBe(0);
  });

  it.each(VARIANTS)("in an unshared block: replace, insert in order, remove, edited in place (%s)", (_n, args) => {
    let acl = 0;
    const { img } = withImage(args, (vol, model, image) => {
      acl = fileAcl(image, "/a");
      expect(acl).toBeGreaterThan(0);
      set(vol, model, "/a", "user.two", A(300, 0x42), "replace");
      set(vol, model, "/a", "user.three", A(100, 0x43));
      set(vol, model, "/a", "user.aa", A(200, 0x44));
      set(vol, model, "/a", "trusted.zz", A(7, 0x45));
      set(vol, model, "/a", "user.two", A(333, 0x46));
      remove(vol, model, "/a", "user.three");
    });
    expect(fileAcl(img, "/a")).toBe(acl);
    blockSorted(img, acl);
  });

  it.each(VARIANTS.filter((v) => v[1].includes("256")))("a value that outgrows the inode moves to the block, and back (%s)", (_n, args) => {
    withImage(args, (vol, model, img) => {
      const acl = fileAcl(img, "/a");
      set(vol, model, "/a", "user.one", A(200, 0x31)); // was in the inode: now in the block
      set(vol, model, "/a", "user.one", Buffer.from("tiny")); // fits the inode again: moves back
      set(vol, model, "/a", "user.three", A(40, 0x32)); // a new one that fits goes in the inode
      set(vol, model, "/a", "user.three", A(90, 0x33)); // and moves to the block when it grows
      expect(fileAcl(img, "/a")).toBe(acl);
    });
  });

  it.each(VARIANTS)("many attributes until ENOSPC, the image stays clean (%s)", (_n, args) => {
    let n = 0;
    withImage(args, (vol, model) => {
      for (;; n++) {
        const name = `user.k${String(n).padStart(4, "0")}`;
        const c = code(() => vol.setxattr("/a", name, A(24, 0x30 + (n % 10))));
        if (c) {
          expect(c).toBe("ENOSPC");
          break;
        }
        model.get("/a")!.set(name, A(24, 0x30 + (n % 10)));
      }
      // ENOSPC changed nothing: a replace of the same size still works.
      set(vol, model, "/a", "user.k0000", A(24, 0x7a), "replace");
    });
    expect(n).toBeGreaterThan(3);
  });
});

d("xattr writes with ea_inode", () => {
  // Values the kernel would put in an inode of their own are refused (EOPNOTSUPP), and only those.
  it("EOPNOTSUPP exactly where the kernel takes an ea_inode", () => {
    const img = mkfsImage(work, `ea${seq++}`, tree, ["-b", "4096", "-I", "256", "-O", "ea_inode"]);
    const kimg = `${img}.kernel`;
    fs.copyFileSync(img, kimg);
    const model = cloneModel(base);
    const vol = mount(img);
    try {
      set(vol, model, "/c", "user.v1", A(3000, 0x61)); // fits the block, with min(bs/8, 1024) to spare
      expect(code(() => vol.setxattr("/c", "user.v2", A(700, 0x62)))).toBe("EOPNOTSUPP"); // would eat the reserve
      expect(code(() => vol.setxattr("/e", "user.huge", A(4050, 0x63)))).toBe("EOPNOTSUPP"); // larger than EXT4_XATTR_MIN_LARGE_EA_SIZE
      set(vol, model, "/e", "user.ok", A(40, 0x64));
    } finally {
      vol.unmount();
    }
    judge(img, model);
    if (!loopMountSupport().ok) return;
    // The kernel, given the same values, stores v1 in the block and v2 and huge in ea_inodes.
    withLoopMountSync(kimg, (mnt) => {
      runSync("setfattr", ["-n", "user.v1", "-v", `0x${A(3000, 0x61).toString("hex")}`, path.join(mnt, "c")]);
      runSync("setfattr", ["-n", "user.v2", "-v", `0x${A(700, 0x62).toString("hex")}`, path.join(mnt, "c")]);
      runSync("setfattr", ["-n", "user.huge", "-v", `0x${A(4050, 0x63).toString("hex")}`, path.join(mnt, "e")]);
    });
    const kv = mount(kimg, { readOnly: true });
    try {
      const f = (kv as unknown as { fs: Ext4 }).fs;
      const inums = (p: string): Record<string, number> => {
        const inode = f.inode(kv.statSync(p).ino);
        const first = 128 + inode.extraIsize + 4;
        const recs = new DataView(inode.raw.buffer, inode.raw.byteOffset).getUint32(first - 4, true) === 0xea020000 ? parseXattrRecords(inode.raw, first, first, inode.raw.length, {}) : [];
        if (inode.fileAcl) {
          const b = f.bcache.readCopy(inode.fileAcl);
          recs.push(...parseXattrRecords(b, 32, 0, b.length, {}));
        }
        return Object.fromEntries(recs.map((r) => [Buffer.from(r.name).toString(), r.valueInum]));
      };
      const c = inums("/c");
      expect(c.v1).toBe(0);
      expect(c.v2).toBeGreaterThan(0);
      expect(inums("/e").huge).toBeGreaterThan(0);
    } finally {
      kv.unmount();
    }
  });
});

d("xattr writes with ea_inode: a full block", () => {
  it("values the block has no room for are EOPNOTSUPP (the kernel's ea_inode), an empty one ENOSPC (the kernel does not retry those)", () => {
    withImage(["-b", "1024", "-I", "128", "-O", "ea_inode"], (vol, model) => {
      let n = 0;
      let c: string | undefined;
      for (; !(c = code(() => vol.setxattr("/c", `user.v${n}`, A(20, 0x76)))); n++) model.get("/c")!.set(`user.v${n}`, A(20, 0x76));
      expect(c).toBe("EOPNOTSUPP");
      expect(n).toBeGreaterThan(5);
      for (; !(c = code(() => vol.setxattr("/c", `user.e${n}`, Buffer.alloc(0)))); n++) model.get("/c")!.set(`user.e${n}`, Buffer.alloc(0));
      expect(c).toBe("ENOSPC");
    });
  });
});

const ACCESS = "system.posix_acl_access";
const DEFAULT = "system.posix_acl_default";
/** The posix_acl_xattr encoding: [tag, perm, id] with 0xffffffff for the entries without an id. */
function aclXattr(entries: [number, number, number?][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i);
  });
  return b;
}

d("POSIX ACL writes", () => {
  const args = VARIANTS[0][1];
  it("an access ACL is stored in ext4's encoding, reads back in the xattr one, and sets the mode; getfacl agrees", () => {
    const full = aclXattr([[1, 6], [2, 4, 1234], [4, 4], [8, 5, 55], [0x10, 6], [0x20, 4]]);
    const dflt = aclXattr([[1, 7], [2, 7, 77], [4, 5], [0x10, 7], [0x20, 0]]);
    const { img } = withImage(args, (vol, model) => {
      set(vol, model, "/c", ACCESS, full);
      set(vol, model, "/d", DEFAULT, dflt);
      expect(vol.statSync("/c").mode & 0o777).toBe(0o664); // group bits from the mask
      // An ACL the mode says in full is no ACL: the xattr goes, the mode stays set.
      vol.setxattr("/b", ACCESS, aclXattr([[1, 7], [4, 0], [0x20, 1]]));
      expect(vol.statSync("/b").mode & 0o777).toBe(0o701);
      expect(vol.listxattr("/b")).toEqual(["user.x"]);
      // Removing an absent ACL is no error (vfs_remove_acl); a default ACL on a file is EACCES.
      vol.removexattr("/e", ACCESS);
      expect(code(() => vol.setxattr("/e", DEFAULT, dflt))).toBe("EACCES");
      vol.setxattr("/e", DEFAULT, aclXattr([])); // no entries: no ACL, nothing to refuse
      expect(code(() => vol.setxattr("/e", ACCESS, aclXattr([[1, 6], [2, 4, 9], [4, 4], [0x20, 4]])))).toBe("EINVAL"); // named entry, no mask
      expect(code(() => vol.setxattr("/e", ACCESS, aclXattr([[4, 4], [1, 6], [0x20, 4]])))).toBe("EINVAL"); // out of order
      const v3 = aclXattr([[1, 6], [4, 4], [0x20, 4]]);
      v3.writeUInt32LE(3, 0);
      expect(code(() => vol.setxattr("/e", ACCESS, v3))).toBe("EOPNOTSUPP");
      expect(code(() => vol.setxattr("/e", ACCESS, Buffer.concat([aclXattr([[1, 6]]), Buffer.alloc(3)])))).toBe("EINVAL"); // not whole entries
      expect(code(() => vol.setxattr("/e", ACCESS, Buffer.alloc(3)))).toBe("EINVAL");
    });
    const ours = mount(img, { readOnly: true });
    try {
      expect(ours.statSync("/b").mode & 0o777).toBe(0o701);
    } finally {
      ours.unmount();
    }
    if (loopMountSupport().ok) {
      withLoopMountSync(img, (mnt) => {
        const facl = runSync("getfacl", ["-n", "-E", "--absolute-names", path.join(mnt, "c"), path.join(mnt, "d")]).stdout;
        expect(facl).toContain("user::rw-\nuser:1234:r--\ngroup::r--\ngroup:55:r-x\nmask::rw-\nother::r--");
        expect(facl).toContain("default:user::rwx\ndefault:user:77:rwx\ndefault:group::r-x\ndefault:mask::rwx\ndefault:other::---");
        expect(fs.statSync(path.join(mnt, "b")).mode & 0o777).toBe(0o701);
        expect(fs.statSync(path.join(mnt, "c")).mode & 0o777).toBe(0o664);
      }, { readOnly: true });
    }
  });

  it("noacl: ACL names are EOPNOTSUPP, other xattrs still work", () => {
    const img = mkfsImage(work, `noacl${seq++}`, tree, args);
    const vol = mount(img, { mountOptions: "noacl" });
    try {
      expect(code(() => vol.setxattr("/c", ACCESS, aclXattr([[1, 6], [4, 4], [0x20, 4]])))).toBe("EOPNOTSUPP");
      expect(code(() => vol.removexattr("/c", ACCESS))).toBe("EOPNOTSUPP");
      vol.setxattr("/c", "user.ok", "1");
    } finally {
      vol.unmount();
    }
    fsckClean(img);
  });
});

/** The block's entries are in the kernel's sorted order (index, name length, name) and the header hash matches. */
function blockSorted(img: string, pblk: number): void {
  const vol = mount(img, { readOnly: true });
  try {
    const f = (vol as unknown as { fs: Ext4 }).fs;
    const b = f.bcache.readCopy(pblk);
    const keys: [number, number, string][] = [];
    const dv = new DataView(b.buffer, b.byteOffset);
    for (let p = 32; dv.getUint32(p, true) !== 0; ) {
      const len = b[p];
      keys.push([b[p + 1], len, Buffer.from(b.subarray(p + 16, p + 16 + len)).toString("latin1")]);
      p += (16 + len + 3) & ~3;
    }
    const want = [...keys].sort((x, y) => x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0));
    expect(keys).toEqual(want);
  } finally {
    vol.unmount();
  }
}
