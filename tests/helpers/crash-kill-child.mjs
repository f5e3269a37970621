// The workload tests/crash-kill.test.ts SIGKILLs at a random moment: runs
// through the BUILT package (dist/) on a file-backed image until killed, and
// reports on stdout, one JSON line each, what it made durable:
//   {"kind":"prefix","path":P,"size":N,"sha":H}  an append-only file was
//       fsync'd (or fdatasync'd): its first N bytes hash to H from now on;
//   {"kind":"intent","path":P,"sha":H}  P is about to be replaced by rename
//       with content H (a crash may leave the old or the new content);
//   {"kind":"durable","path":P,"sha":H}  the rename and its directory fsync
//       returned: P holds H (or a later intent's content).
// Around these it churns a scratch directory (create, write, truncate,
// punch, link, symlink, rename, unlink, mkdir, rmdir, setxattr), unreported.
//
//   node crash-kill-child.mjs IMAGE SEED [MOUNT_OPTIONS]

import { createHash } from "node:crypto";
import { writeSync } from "node:fs";
import { mount } from "../../dist/index.mjs";

const [image, seedArg, mountOptions] = process.argv.slice(2);
let x = Number(seedArg) >>> 0 || 1;
const rnd = () => {
  x ^= x << 13; x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5; x >>>= 0;
  return x / 4294967296;
};
const int = (n) => Math.floor(rnd() * n);
const bytes = (len) => {
  const b = Buffer.alloc(len);
  let w = 0;
  for (let i = 0; i < len; i++) {
    if ((i & 3) === 0) w = Math.floor(rnd() * 4294967296);
    b[i] = (w >>> ((i & 3) * 8)) & 0xff;
  }
  return b;
};
const sha = (b) => createHash("sha256").update(b).digest("hex");
const report = (o) => writeSync(1, `${JSON.stringify(o)}\n`);

const vol = mount(image, { mountOptions: mountOptions || undefined });
const fsyncPath = (p, data = false) => {
  const fd = vol.openSync(p, "r");
  try { data ? vol.fdatasyncSync(fd) : vol.fsyncSync(fd); } finally { vol.closeSync(fd); }
};

const LOGS = 4, DOCS = 3, CAP = 700_000;
for (const d of ["/logs", "/docs", "/scratch"]) vol.mkdirSync(d);
const logs = [];
for (let i = 0; i < LOGS; i++) {
  vol.writeFileSync(`/logs/L${i}`, "");
  logs.push(Buffer.alloc(0));
}
fsyncPath("/logs");
fsyncPath("/");
report({ kind: "ready" });

let n = 0;
for (;;) {
  const r = rnd();
  if (r < 0.35) { // append to a log, sometimes sync it
    const i = int(LOGS);
    if (logs[i].length > CAP) continue;
    const b = bytes(1 + (rnd() < 0.5 ? int(3000) : int(60_000)));
    const fd = vol.openSync(`/logs/L${i}`, "a");
    try {
      vol.writeSync(fd, b);
      logs[i] = Buffer.concat([logs[i], b]);
      if (rnd() < 0.4) {
        rnd() < 0.5 ? vol.fsyncSync(fd) : vol.fdatasyncSync(fd);
        report({ kind: "prefix", path: `/logs/L${i}`, size: logs[i].length, sha: sha(logs[i]) });
      }
    } finally {
      vol.closeSync(fd);
    }
  } else if (r < 0.5) { // replace a doc by rename
    const p = `/docs/D${int(DOCS)}`;
    const b = bytes(int(50_000));
    vol.writeFileSync(`${p}.tmp`, b);
    fsyncPath(`${p}.tmp`);
    report({ kind: "intent", path: p, sha: sha(b) });
    vol.renameSync(`${p}.tmp`, p);
    fsyncPath("/docs");
    report({ kind: "durable", path: p, sha: sha(b) });
  } else { // scratch churn
    const names = vol.readdirSync("/scratch");
    const pick = () => `/scratch/${names[int(names.length)]}`;
    const c = int(10);
    try {
      if (c <= 1 || names.length < 3) vol.writeFileSync(`/scratch/f${n++}`, bytes(int(40_000)));
      else if (c === 2) { const fd = vol.openSync(pick(), "r+"); try { vol.writeSync(fd, bytes(1 + int(20_000)), 0, undefined, int(60_000)); } finally { vol.closeSync(fd); } }
      else if (c === 3) vol.truncateSync(pick(), int(50_000));
      else if (c === 4) { const fd = vol.openSync(pick(), "r+"); try { vol.fallocateSync(fd, int(30_000), 1 + int(30_000), rnd() < 0.5 ? { punchHole: true, keepSize: true } : { zeroRange: true }); } finally { vol.closeSync(fd); } }
      else if (c === 5) vol.linkSync(pick(), `/scratch/h${n++}`);
      else if (c === 6) vol.symlinkSync("t".repeat(1 + int(200)), `/scratch/s${n++}`);
      else if (c === 7) vol.renameSync(pick(), rnd() < 0.5 ? pick() : `/scratch/r${n++}`);
      else if (c === 8) vol.rmSync(pick(), { recursive: true });
      else if (rnd() < 0.5) vol.mkdirSync(`/scratch/d${n++}`);
      else vol.setxattr(pick(), `user.k${int(3)}`, bytes(1 + int(300)));
    } catch (e) {
      // A pick that hit a directory or a symlink where a file was wanted: the op is refused, as Linux would.
      if (!["EISDIR", "ENOTDIR", "EPERM", "EINVAL", "ENOENT", "ENOTEMPTY", "EEXIST"].includes(e.code)) throw e;
    }
    if (rnd() < 0.1) fsyncPath("/scratch");
  }
}
