// The write surface's permission checks for an ordinary user: the same tree
// is set up as root on the kernel's loop mount and on our volume, then a
// child process drops to nobody (65534) and runs one sequence of creates,
// removals, renames and attribute changes on each; every result and error
// must be the kernel's. Needs root and loop mounts (printed when skipped).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ensureBuilt, ROOT } from "./cli-helpers.js";
import { runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMount } from "./helpers/kernel.js";

const NOBODY = 65534;
const loop = loopMountSupport();
const reason = process.getuid?.() !== 0 ? "needs root to drop to nobody" : !loop.ok ? `needs loop mounts: ${loop.reason}` : "";
if (reason) console.log(`vfs-write-creds: skipped: ${reason}`);

let work: string;
beforeAll(() => {
  if (reason) return;
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-wcreds-"));
  fs.chmodSync(work, 0o755);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- node:fs or a Volume
function setup(f: any, root: string): void {
  const p = (s: string) => root + s;
  f.mkdirSync(p("/rootdir"), 0o755);
  f.writeFileSync(p("/rootdir/f"), "root's");
  f.mkdirSync(p("/rootdir/sub"), 0o755);
  f.mkdirSync(p("/mine"), 0o755);
  f.chownSync(p("/mine"), NOBODY, NOBODY);
  f.mkdirSync(p("/sticky"));
  f.chmodSync(p("/sticky"), 0o1777);
  f.writeFileSync(p("/sticky/rootfile"), "x");
  f.mkdirSync(p("/sticky/rootsub"), 0o777);
  f.chmodSync(p("/sticky/rootfile"), 0o666);
  f.writeFileSync(p("/open666"), "x");
  f.chmodSync(p("/open666"), 0o666);
  f.writeFileSync(p("/ro644"), "x");
  f.chmodSync(p("/ro644"), 0o644);
  f.mkdirSync(p("/sgid"));
  f.chownSync(p("/sgid"), 0, 1234);
  f.chmodSync(p("/sgid"), 0o2777);
  f.mkdirSync(p("/shared"));
  f.chmodSync(p("/shared"), 0o777);
  // Set-ID files anyone may write: what a write or truncate by nobody takes away.
  for (const [name, mode] of [["sgid-noexec", 0o2666], ["sgid-exec", 0o2676], ["suid-trunc", 0o4666], ["suid-otrunc", 0o4666]] as const) {
    f.writeFileSync(p(`/${name}`), "set-id");
    f.chownSync(p(`/${name}`), 0, 1234);
    f.chmodSync(p(`/${name}`), mode);
  }
}

/** Runs in the child as nobody: `f` is node:fs or a volume, `p` prefixes paths. */
const SEQUENCE = `
const run = (f, root) => {
  const p = (s) => root + s;
  const out = [];
  const step = (label, fn) => {
    try { const r = fn(); out.push([label, r === undefined ? "ok" : r]); }
    catch (e) { out.push([label, e.code, e.syscall, String(e.message).split(root).join("")]); }
  };
  const st = (s) => { const x = f.lstatSync(p(s)); return [x.mode.toString(8), x.uid, x.gid, x.nlink]; };
  step("create in a root dir", () => f.writeFileSync(p("/rootdir/new"), "x"));
  step("mkdir in a root dir", () => f.mkdirSync(p("/rootdir/d")));
  step("unlink in a root dir", () => f.unlinkSync(p("/rootdir/f")));
  step("rename out of a root dir", () => f.renameSync(p("/rootdir/f"), p("/mine/f")));
  step("create in my dir", () => (f.writeFileSync(p("/mine/new"), "x", { mode: 0o640 }), st("/mine/new")));
  step("mkdir -p in my dir", () => (f.mkdirSync(p("/mine/a/b"), { recursive: true }), st("/mine/a/b")));
  step("symlink in my dir", () => (f.symlinkSync("new", p("/mine/l")), st("/mine/l")));
  step("write to root's 0644", () => f.openSync(p("/ro644"), "r+"));
  step("truncate root's 0644", () => f.truncateSync(p("/ro644"), 0));
  step("write to root's 0666", () => (f.appendFileSync(p("/open666"), "y"), f.readFileSync(p("/open666"), "utf8")));
  step("chmod root's file", () => f.chmodSync(p("/open666"), 0o600));
  step("chown root's file", () => f.chownSync(p("/open666"), ${NOBODY}, ${NOBODY}));
  step("chown my file to root", () => f.chownSync(p("/mine/new"), 0, 0));
  step("chgrp my file to a group I am not in", () => f.chownSync(p("/mine/new"), -1, 1234));
  step("chown my file to myself", () => (f.chownSync(p("/mine/new"), ${NOBODY}, ${NOBODY}), st("/mine/new")));
  step("utimes of root's 0666 file", () => f.utimesSync(p("/open666"), 1, 2));
  step("utimes of my file", () => (f.utimesSync(p("/mine/new"), 1, 2), f.statSync(p("/mine/new")).mtimeMs));
  step("chmod g+s on my file, not in its group", () => (f.chownSync(p("/mine/new"), -1, ${NOBODY}), f.chmodSync(p("/mine/new"), 0o2755), st("/mine/new")));
  step("chmod u+s, then write drops it", () => {
    f.chmodSync(p("/mine/new"), 0o4755);
    f.appendFileSync(p("/mine/new"), "z");
    return st("/mine/new");
  });
  step("write to sgid without group execute, outside the group", () => (f.appendFileSync(p("/sgid-noexec"), "w"), st("/sgid-noexec")));
  step("write to sgid with group execute", () => (f.appendFileSync(p("/sgid-exec"), "w"), st("/sgid-exec")));
  step("truncate a suid file", () => (f.truncateSync(p("/suid-trunc"), 2), st("/suid-trunc")));
  step("open O_TRUNC a suid file", () => (f.closeSync(f.openSync(p("/suid-otrunc"), "w")), st("/suid-otrunc")));
  step("unlink a directory in a root dir", () => f.unlinkSync(p("/rootdir/sub")));
  step("unlink a directory/ in a root dir", () => f.unlinkSync(p("/rootdir/sub/")));
  step("rmdir a file in a root dir", () => f.rmdirSync(p("/rootdir/f")));
  step("rename a root dir's file over its directory", () => f.renameSync(p("/rootdir/f"), p("/rootdir/sub")));
  step("sticky: rename my file over root's directory", () => (f.writeFileSync(p("/sticky/m1"), "m"), f.renameSync(p("/sticky/m1"), p("/sticky/rootsub"))));
  step("sticky: rename my directory over root's file", () => (f.mkdirSync(p("/sticky/md")), f.renameSync(p("/sticky/md"), p("/sticky/rootfile"))));
  step("rename with RENAME_WHITEOUT: the whiteout is the caller's (no CAP_MKNOD needed since 5.8)", () => {
    f.writeFileSync(p("/shared/w1"), "w");
    if (f !== require("node:fs")) { try { f.renameSync(p("/shared/w1"), p("/shared/w2"), { whiteout: true }); return ["ok", st("/shared/w1")]; } catch (e) { return e.code; } }
    const py = "import ctypes,os,sys\\nlibc=ctypes.CDLL(None,use_errno=True)\\nr=libc.renameat2(-100,sys.argv[1].encode(),-100,sys.argv[2].encode(),4)\\nprint(os.strerror(ctypes.get_errno()) if r else 'ok')";
    const r = require("node:child_process").spawnSync("python3", ["-c", py, p("/shared/w1"), p("/shared/w2")], { encoding: "utf8" }).stdout.trim();
    return r === "ok" ? [r, st("/shared/w1")] : r;
  });
  step("sticky: remove root's file", () => f.unlinkSync(p("/sticky/rootfile")));
  step("sticky: rename root's file", () => f.renameSync(p("/sticky/rootfile"), p("/sticky/x")));
  step("sticky: my own file", () => (f.writeFileSync(p("/sticky/mine"), "m"), f.renameSync(p("/sticky/mine"), p("/sticky/mine2")), f.unlinkSync(p("/sticky/mine2")), f.readdirSync(p("/sticky")).sort()));
  step("setgid dir: the group and bit are inherited", () => (f.mkdirSync(p("/sgid/d")), f.writeFileSync(p("/sgid/f"), "x"), [st("/sgid/d"), st("/sgid/f")]));
  step("link root's file into a shared dir", () => (f.linkSync(p("/open666"), p("/shared/hard")), st("/open666")));
  step("link root's 0644 file (protected_hardlinks)", () => f.linkSync(p("/ro644"), p("/shared/hard2")));
  step("rm -r my tree", () => (f.rmSync(p("/mine"), { recursive: true }), f.existsSync(p("/mine"))));
  return out;
};
`;

const CHILD = `
const fs = require("node:fs");
const [dist, kind, target, uid] = process.argv.slice(1);
process.setgroups([]); process.setgid(Number(uid)); process.setuid(Number(uid));
${SEQUENCE}
if (kind === "kernel") { process.umask(0o022); process.stdout.write(JSON.stringify(run(fs, target))); }
else import(dist).then(({ mount }) => {
  const vol = mount(target);
  vol.umask = 0o022;
  let out;
  try { out = run(vol, ""); } finally { vol.unmount(); }
  process.stdout.write(JSON.stringify(out));
});
`;

function child(kind: "kernel" | "ours", target: string): unknown[] {
  const r = spawnSync(process.execPath, ["-e", CHILD, path.join(ROOT, "dist/index.mjs"), kind, target, String(NOBODY)], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout) as unknown[];
}

function image(name: string): string {
  const img = path.join(work, `${name}.img`);
  runSync("mkfs.ext4", ["-q", "-F", "-U", "6d0e4b2a-61b1-4c1e-9d5a-0a0b0c0d0e0f", img, "32M"], { env: mkfsEnv(work) });
  fs.chmodSync(img, 0o666);
  return img;
}

describe("the write surface for a non-root caller", () => {
  it("refuses and allows as the kernel does: directory permissions, sticky and setgid directories, owners' rights, set-ID clearing", async ({ skip }) => {
    if (reason) skip(reason);
    const theirs = image("theirs");
    const kernel = await withLoopMount(theirs, (mnt) => {
      fs.chmodSync(mnt, 0o755);
      setup(fs, mnt);
      return child("kernel", mnt);
    });
    const ours = image("ours");
    const vol = mount(ours);
    try {
      vol.umask = 0;
      setup(vol, "");
    } finally {
      vol.unmount();
    }
    // We link as fs.protected_hardlinks = 1 decides; a host with 0 answers that step otherwise.
    const hostProtects = fs.readFileSync("/proc/sys/fs/protected_hardlinks", "utf8").trim() === "1";
    const keep = (steps: unknown[]) => steps.filter((s) => hostProtects || !String((s as unknown[])[0]).includes("protected_hardlinks"));
    const got = child("ours", ours);
    expect(keep(got)).toEqual(keep(kernel));
    // Not trivially all allowed or all refused.
    const codes = (kernel as unknown[][]).map((s) => (s.length === 4 ? s[1] : "ok"));
    expect([codes.includes("EACCES"), codes.includes("EPERM"), codes.filter((c) => c === "ok").length > 5]).toEqual([true, true, true]);
    const fsck = runSync("e2fsck", ["-fn", ours], { okCodes: [0, 1, 4, 8] });
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  }, 120_000);
});
