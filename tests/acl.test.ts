// POSIX ACLs: getxattr returns the xattr encoding getxattr(2) gives (as
// `getfattr -e hex` shows it), not ext4's on-disk one; `get` puts them back.

import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ensureBuilt, runCli } from "./cli-helpers.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const missing = ["setfacl", "getfacl", "getfattr"].filter((t) => !have(t));
let work: string;
let src: string;
let reason = missing.length ? `${missing.join(", ")} missing (install the 'acl' and 'attr' packages)` : "";

/** getfattr's hex of one xattr, or null when the file has none of that name. */
function hostAcl(p: string, name: string): Buffer | null {
  const r = spawnSync("getfattr", ["--absolute-names", "-e", "hex", "-n", name, p], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const m = /=0x([0-9a-f]*)/.exec(r.stdout);
  return m ? Buffer.from(m[1], "hex") : null;
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-acl-"));
  if (reason) return;
  src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "d"), { recursive: true });
  fs.writeFileSync(path.join(src, "f"), "hi\n");
  fs.writeFileSync(path.join(src, "plain"), "no acl\n");
  try {
    execFileSync("setfacl", ["-m", "u:1234:rw-,g:55:r-x,m::rwx", path.join(src, "f")]);
    execFileSync("setfacl", ["-m", "u:88:r,o::-", path.join(src, "d")]);
    execFileSync("setfacl", ["-d", "-m", "u:77:rwx,g:99:r", path.join(src, "d")]);
  } catch (e) {
    reason = `setfacl does not work in ${os.tmpdir()}: ${(e as Error).message.split("\n")[0]}`;
  }
  if (reason) console.log(`skipping ACL tests: ${reason}`);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function image(extra: string[] = []): string {
  const img = path.join(work, `i${Math.random().toString(36).slice(2)}.img`);
  execFileSync("mkfs.ext4", ["-q", "-F", ...extra, "-d", src, img, "8M"]);
  return img;
}

describe("POSIX ACLs", () => {
  it("getxattr returns the bytes getfattr shows for the same ACLs on the host", ({ skip }) => {
    if (reason) skip(reason);
    const v = mount(image(), { readOnly: true });
    try {
      for (const [p, name] of [["f", "system.posix_acl_access"], ["d", "system.posix_acl_access"], ["d", "system.posix_acl_default"]]) {
        const want = hostAcl(path.join(src, p), name);
        expect(want, `${p} ${name} on the host`).not.toBeNull();
        expect(want!.readUInt32LE(0)).toBe(2);
        expect(v.getxattr(`/${p}`, name).toString("hex"), `${p} ${name}`).toBe(want!.toString("hex"));
      }
      expect(v.listxattr("/d").sort()).toEqual(["system.posix_acl_access", "system.posix_acl_default"]);
      expect(() => v.getxattr("/plain", "system.posix_acl_access")).toThrow(expect.objectContaining({ code: "ENODATA" }));
    } finally {
      v.unmount();
    }
  });

  it("a malformed on-disk ACL is EFSCORRUPTED", ({ skip }) => {
    if (reason) skip(reason);
    // No metadata_csum, so the patched inode still passes its checksum and the ACL decoder is what objects.
    const bytes = new Uint8Array(fs.readFileSync(image(["-O", "^metadata_csum"])));
    // /f's on-disk ACL: version 1, USER_OBJ rw-, USER rw- 1234 ...
    const needle = Buffer.from("010000000100060002000600d2040000", "hex");
    const at = Buffer.from(bytes).indexOf(needle);
    expect(at).toBeGreaterThan(0);
    const variants: [string, (b: Uint8Array) => void][] = [
      ["bad version", (b) => { b[at] = 3; }],
      ["unknown tag", (b) => { b[at + 8] = 0x40; }],
    ];
    for (const [what, patch] of variants) {
      const b = bytes.slice();
      patch(b);
      const v = mount(b, { readOnly: true });
      try {
        expect(() => v.getxattr("/f", "system.posix_acl_access"), what).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
        expect(v.listxattr("/f")).toContain("system.posix_acl_access");
      } finally {
        v.unmount();
      }
    }
  });

  it("get restores them on the copy (getfacl of the copy matches the source)", ({ skip }) => {
    if (reason) skip(reason);
    ensureBuilt();
    const img = image();
    const dst = path.join(work, "copy");
    const r = runCli(["get", img, "/", dst]);
    expect(r.stderr).not.toMatch(/ACL/);
    expect(r.status).toBe(0);
    const facl = (p: string) => execFileSync("getfacl", ["-c", "-n", "-p", p], { encoding: "utf8" });
    for (const p of ["f", "d", "plain"]) expect(facl(path.join(dst, p)), p).toBe(facl(path.join(src, p)));
    expect(facl(path.join(dst, "d"))).toMatch(/default:user:77:rwx/);
    // The mode's group bits are the mask, as on the source.
    expect(fs.statSync(path.join(dst, "f")).mode & 0o7777).toBe(fs.statSync(path.join(src, "f")).mode & 0o7777);
  });

  it("ACLs the kernel wrote (setfacl on a loop mount) read back as getfattr showed them there", ({ skip }) => {
    if (reason) skip(reason);
    const loop = loopMountSupport();
    if (!loop.ok) skip(`loop mounts unavailable: ${loop.reason}`);
    const img = path.join(work, "kernel.img");
    execFileSync("mkfs.ext4", ["-q", "-F", "-I", "256", img, "8M"]);
    // A short ACL (in the inode), one with many named users (too big for the inode: an xattr block), and a default ACL.
    const many = Array.from({ length: 40 }, (_, i) => `u:${2000 + i}:r`).join(",") + ",g:300:rw";
    const want = withLoopMountSync(img, (mnt) => {
      fs.writeFileSync(path.join(mnt, "short"), "s");
      fs.writeFileSync(path.join(mnt, "many"), "m");
      fs.mkdirSync(path.join(mnt, "dir"));
      execFileSync("setfacl", ["-m", "u:1000:rwx,g:100:r", path.join(mnt, "short")]);
      execFileSync("setfacl", ["-m", many, path.join(mnt, "many")]);
      execFileSync("setfacl", ["-d", "-m", "u:5:rx", path.join(mnt, "dir")]);
      return {
        short: hostAcl(path.join(mnt, "short"), "system.posix_acl_access"),
        many: hostAcl(path.join(mnt, "many"), "system.posix_acl_access"),
        dirDefault: hostAcl(path.join(mnt, "dir"), "system.posix_acl_default"),
      };
    });
    expect(want.many!.length).toBe(4 + 8 * 45); // 41 named entries and the 4 short ones
    const v = mount(img, { readOnly: true });
    try {
      expect({
        short: v.getxattr("/short", "system.posix_acl_access"),
        many: v.getxattr("/many", "system.posix_acl_access"),
        dirDefault: v.getxattr("/dir", "system.posix_acl_default"),
      }).toEqual(want);
      expect(v.inodeOf("/many").fileAcl, "the big ACL lives in an xattr block").not.toBe(0);
    } finally {
      v.unmount();
    }
  });

  it("get onto a filesystem that takes no ACLs (ramfs) copies the rest and warns once", ({ skip }) => {
    if (reason) skip(reason);
    if (process.getuid?.() !== 0) skip("mounting a ramfs needs root");
    ensureBuilt();
    const img = image();
    const mnt = path.join(work, "ramfs");
    fs.mkdirSync(mnt);
    execFileSync("mount", ["-t", "ramfs", "ext4wasm-acl-test", mnt]);
    try {
      const r = runCli(["get", img, "/", path.join(mnt, "copy")]);
      expect(r.status).toBe(0);
      const warnings = r.stderr.split("\n").filter(Boolean);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^ext4wasm: warning: POSIX ACLs not copied \(3 in all\): setfattr: /);
      expect(fs.readFileSync(path.join(mnt, "copy/f"), "utf8")).toBe("hi\n");
      expect(fs.statSync(path.join(mnt, "copy/f")).mode & 0o777).toBe(fs.statSync(path.join(src, "f")).mode & 0o777);
    } finally {
      execFileSync("umount", [mnt]);
    }
  });
});
