// access(2) as an ordinary user: a child process drops to nobody (65534) and
// asks the host kernel (node:fs on a host tree with modes, owners and POSIX
// ACLs) and the volume made from that tree the same questions, every mode.

import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, ROOT } from "./cli-helpers.js";

const NOBODY = 65534;
let work: string;
let reason = "";

// name -> [mode, uid, gid, setfacl spec or ""]
const FILES: Record<string, [number, number, number, string]> = {
  f640: [0o640, 0, 0, ""],
  f604: [0o604, 0, 0, ""],
  ownerReadOnly: [0o460, NOBODY, 0, ""], // the owner class decides, though the group class could write
  groupOnly: [0o040, 0, NOBODY, ""],
  exec755: [0o755, 0, 0, ""],
  exec700: [0o700, 0, 0, ""],
  aclUser: [0o600, 0, 0, `u:${NOBODY}:rw`],
  aclMasked: [0o600, 0, 0, `u:${NOBODY}:rwx,m::r`],
  aclGroup: [0o600, 0, 0, `g:${NOBODY}:rx`],
  aclGroupDenies: [0o604, 0, 0, `g:${NOBODY}:-,o::r`], // a matching group entry shuts out "other"
};

beforeAll(() => {
  if (process.getuid?.() !== 0) { reason = "needs root to make files for another user and to drop to nobody"; return; }
  if (spawnSync("sh", ["-c", "command -v setfacl"]).status !== 0) { reason = "setfacl missing (install the 'acl' package)"; return; }
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-access-"));
  fs.chmodSync(work, 0o755);
  const src = path.join(work, "src");
  fs.mkdirSync(src, { mode: 0o755 });
  fs.chmodSync(src, 0o755);
  for (const [name, [mode, uid, gid, acl]] of Object.entries(FILES)) {
    const p = path.join(src, name);
    fs.writeFileSync(p, "x");
    fs.chownSync(p, uid, gid);
    fs.chmodSync(p, mode);
    if (acl) execFileSync("setfacl", ["-m", acl, p]);
  }
  fs.mkdirSync(path.join(src, "dir711"));
  fs.chmodSync(path.join(src, "dir711"), 0o711);
  fs.mkdirSync(path.join(src, "dir700"));
  fs.chmodSync(path.join(src, "dir700"), 0o700);
  const img = path.join(work, "a.img");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", src, img, "8M"]);
  fs.chmodSync(img, 0o644);
});

afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const CHILD = `
const fs = require("node:fs");
const [dist, src, img, uid] = process.argv.slice(1);
process.setgroups([]); process.setgid(Number(uid)); process.setuid(Number(uid));
import(dist).then(({ mount }) => {
  const vol = mount(new Uint8Array(fs.readFileSync(img)));
  const ask = (f) => { try { f(); return "ok"; } catch (e) { return e.code; } };
  const out = {};
  for (const name of fs.readdirSync(src)) for (let mode = 0; mode < 8; mode++) {
    out[name + " " + mode] = [ask(() => fs.accessSync(src + "/" + name, mode)), ask(() => vol.accessSync("/" + name, mode))];
  }
  process.stdout.write(JSON.stringify(out));
});
`;

describe("accessSync for a non-root caller", () => {
  it("answers as the kernel does for owner, group, other and ACL entries, every mode", ({ skip }) => {
    if (reason) skip(reason);
    const r = spawnSync(process.execPath, ["-e", CHILD, path.join(ROOT, "dist/index.mjs"), path.join(work, "src"), path.join(work, "a.img"), String(NOBODY)], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    const answers = JSON.parse(r.stdout) as Record<string, [string, string]>;
    const differ = Object.entries(answers).filter(([, [host, vol]]) => host !== vol).map(([k, [host, vol]]) => `${k}: kernel ${host}, volume ${vol}`);
    expect(differ).toEqual([]);
    // The matrix is not trivially all "ok": the caller is refused somewhere, and allowed somewhere only through an ACL.
    expect(answers["f640 4"][0]).toBe("EACCES");
    expect(answers["aclUser 6"][0]).toBe("ok");
  });
});
