// put makes a file in a directory it creates with the file's final mode and
// skips the chown and chmod that would change nothing; where the image's
// directory would change what a new file gets (setgid: its group; a default
// ACL: its mode and an access ACL) it sets owner and mode in full. Either
// way the result is cp -a's: the source's mode bits (set-ID included), owner
// (as root) and times. e2fsck judges the image.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACL_GROUP_OBJ, ACL_OTHER, ACL_UNDEFINED_ID, ACL_USER_OBJ, aclToXattr } from "../host/format/acl.js";
import { mount } from "../host/index.js";
import { ensureBuilt, runCli } from "./cli-helpers.js";
import { missingTools, runSync } from "./helpers/exec.js";

const missing = missingTools(["mkfs.ext4", "e2fsck"], "e2fsprogs");
if (missing) console.log(`put-owners: skipped: ${missing}`);
const isRoot = process.getuid?.() === 0;
if (!missing && !isRoot) console.log("put-owners: the other-owner cases skipped: not root (chown of the source needs it)");
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (missing) return;
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-put-owners-"));
}, 300_000);
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const FILES: { name: string; mode: number; uid?: number; gid?: number }[] = [
  { name: "plain", mode: 0o644 },
  { name: "readonly", mode: 0o444 },
  { name: "none", mode: 0o000 },
  { name: "suid", mode: 0o4755 },
  { name: "sgid", mode: 0o2750 },
  { name: "sticky", mode: 0o1644 },
  ...(isRoot ? [{ name: "other", mode: 0o640, uid: 1234, gid: 4321 }, { name: "other-suid", mode: 0o4711, uid: 77, gid: 0 }] : []),
];

function hostTree(root: string): void {
  fs.mkdirSync(path.join(root, "sub"), { recursive: true });
  let t = 1_000_000_000;
  for (const dir of [root, path.join(root, "sub")]) {
    for (const f of FILES) {
      const p = path.join(dir, f.name);
      fs.writeFileSync(p, `bytes of ${f.name}\n`);
      if (f.uid !== undefined) fs.chownSync(p, f.uid, f.gid!);
      fs.chmodSync(p, f.mode);
      fs.utimesSync(p, t + 0.5, t + 0.123456789);
      t += 1000;
    }
  }
}

d("put: owners, modes and times of new files", () => {
  it("are the source's in a fresh directory, in a setgid directory and under a default ACL of the image", () => {
    // A tree per put, its times taken before: reading a file may move its host atime.
    const DESTS = ["/fresh", "/sg/in", "/acl/in"];
    const before = new Map<string, fs.BigIntStats>();
    DESTS.forEach((dest, i) => {
      const src = path.join(work, `src${i}`);
      hostTree(src);
      for (const sub of ["", "/sub"]) for (const f of FILES) before.set(`${dest}${sub}/${f.name}`, fs.lstatSync(path.join(src, sub, f.name), { bigint: true }));
    });
    const img = path.join(work, "img");
    const mk = runSync("mkfs.ext4", ["-q", "-F", "-b", "4096", img, "32M"]);
    expect(mk.code, mk.stderr).toBe(0);
    // Directories of the image that change what a new file gets: setgid with another group; a default ACL with other::---.
    const vol = mount(img, { readOnly: false });
    try {
      vol.mkdirSync("/sg");
      vol.chownSync("/sg", 0, 44);
      vol.chmodSync("/sg", 0o2777);
      vol.mkdirSync("/acl");
      vol.chmodSync("/acl", 0o777);
      vol.setxattr("/acl", "system.posix_acl_default", aclToXattr([
        { tag: ACL_USER_OBJ, perm: 7, id: ACL_UNDEFINED_ID }, { tag: ACL_GROUP_OBJ, perm: 5, id: ACL_UNDEFINED_ID }, { tag: ACL_OTHER, perm: 0, id: ACL_UNDEFINED_ID },
      ]));
    } finally {
      vol.unmount();
    }
    for (const [i, dest] of DESTS.entries()) {
      const r = runCli(["put", "-q", img, path.join(work, `src${i}`), dest]);
      expect(r.status, r.stderr).toBe(0);
    }
    const fsck = runSync("e2fsck", ["-fn", img]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);

    const myUid = process.getuid?.() ?? 0, myGid = process.getgid?.() ?? 0;
    const ro = mount(img, { readOnly: true });
    try {
      for (const dest of DESTS) {
        for (const sub of ["", "/sub"]) {
          for (const f of FILES) {
            const host = before.get(`${dest}${sub}/${f.name}`)!;
            const got = ro.lstatSync(`${dest}${sub}/${f.name}`, { bigint: true });
            const where = `${dest}${sub}/${f.name}`;
            expect(got.mode.toString(8), where).toBe(host.mode.toString(8));
            expect([Number(got.uid), Number(got.gid)], where).toEqual(isRoot ? [Number(host.uid), Number(host.gid)] : [myUid, myGid]);
            expect(got.mtimeNs, where).toBe(host.mtimeNs);
            expect(got.atimeNs, where).toBe(host.atimeNs);
            expect(ro.readFileSync(`${dest}${sub}/${f.name}`, "utf8")).toBe(`bytes of ${f.name}\n`);
          }
        }
      }
    } finally {
      ro.unmount();
    }
  }, 120_000);
});
