// Runs host tools (mkfs, debugfs, e2fsck, mount ...) and reports failures with
// their full output, so a broken image explains itself in the test log.

import { execFile, execFileSync, spawnSync } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
  input?: string;
}

function describe(cmd: string, args: string[], r: RunResult): string {
  return `${cmd} ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ")} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Async run; stdout/stderr decoded as latin1 so raw name bytes survive. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, encoding: "latin1", maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      const r = { code, stdout, stderr };
      if (!(opts.okCodes ?? [0]).includes(code)) reject(new Error(describe(cmd, args, r)));
      else resolve(r);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Synchronous run with the same error reporting. */
export function runSync(cmd: string, args: string[], opts: RunOptions = {}): RunResult {
  try {
    const stdout = execFileSync(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, encoding: "latin1", maxBuffer: 256 << 20, input: opts.input, stdio: ["pipe", "pipe", "pipe"] });
    const r = { code: 0, stdout, stderr: "" };
    if (!(opts.okCodes ?? [0]).includes(0)) throw new Error(describe(cmd, args, r));
    return r;
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string; message: string };
    if (err.status === undefined) throw e;
    const r = { code: err.status ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? err.message };
    if ((opts.okCodes ?? [0]).includes(r.code)) return r;
    throw new Error(describe(cmd, args, r));
  }
}

const toolCache = new Map<string, boolean>();
function haveTool(name: string): boolean {
  let ok = toolCache.get(name);
  if (ok === undefined) {
    try {
      execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
      ok = true;
    } catch {
      ok = false;
    }
    toolCache.set(name, ok);
  }
  return ok;
}

/**
 * Why a suite that needs these host tools cannot run here, or null when all are
 * present. Tests install nothing themselves (.ci/run and the README do): a suite
 * whose tools are missing skips and prints this reason.
 */
export function missingTools(tools: string[], pkg: string): string | null {
  const missing = tools.filter((t) => !haveTool(t));
  if (!missing.length) return null;
  const reason = `skipped: ${missing.join(", ")} not installed (Debian package ${pkg}; see README, "Tests")`;
  console.log(reason);
  return reason;
}

/** setfattr/getfattr (Debian's `attr`): xattrs on the host trees the images are made from. */
export function attrToolsMissing(): string | null {
  return missingTools(["setfattr", "getfattr"], "attr");
}

/** For helpers that need the attr tools: a suite should have skipped already (attrToolsMissing). */
export function ensureAttrTools(): void {
  if (!haveTool("setfattr") || !haveTool("getfattr")) throw new Error("setfattr/getfattr missing: install Debian's attr package (see README, \"Tests\")");
}

let syncProbe: string | null | undefined;

/**
 * Why a global sync(2) would not return here (null: it does). A filesystem
 * stuck elsewhere on the host (a kernel bug, a dead device) blocks every
 * sync(2) forever, and tools such as sfdisk call it on exit. The probe runs
 * sync in the background with its output detached, so a stuck one is left
 * behind rather than hanging the test run.
 */
export function globalSyncStuck(): string | null {
  if (syncProbe !== undefined) return syncProbe;
  const r = spawnSync("sh", ["-c", "sync </dev/null >/dev/null 2>&1 & p=$!; for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 $p 2>/dev/null || { echo ok; exit; }; sleep 0.5; done; echo stuck"], { encoding: "utf8" });
  syncProbe = r.stdout.trim() === "ok" ? null : "a global sync(2) does not return on this host (a filesystem elsewhere is stuck)";
  return syncProbe;
}
