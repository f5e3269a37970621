// What node:fs cannot do, done with host tools: FIFOs (mkfifo), device nodes
// (mknod) and user.* xattrs (setfattr --restore). Tool arguments must be
// text, so nodes are made under an ASCII name in a staging directory on the
// destination filesystem and renamed to their byte-exact name; xattr paths go
// through setfattr's octal escapes, which carry any byte.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const TOOL_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Absolute path of a host tool, from PATH and the usual sbin directories, or null. */
export function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), ...TOOL_DIRS];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function runTool(tool: string, args: string[], input?: Buffer): { ok: boolean; error: string } {
  const r = spawnSync(tool, args, { input, stdio: ["pipe", "ignore", "pipe"], maxBuffer: 16 << 20 });
  if (r.error) return { ok: false, error: r.error.message };
  const stderr = r.stderr?.toString("utf8").trim() ?? "";
  return { ok: r.status === 0, error: stderr.split("\n")[0] || `exited with status ${r.status}` };
}

/** Makes FIFOs and device nodes at byte-exact paths through a staging directory. */
export class NodeMaker {
  private staging: string | null = null;
  private seq = 0;

  /** `near` is a text path on the destination filesystem (the parent of the copy). */
  constructor(private readonly near: string) {}

  private stage(): string {
    if (!this.staging) this.staging = fs.mkdtempSync(path.join(this.near, ".ext4wasm-nodes-"));
    return path.join(this.staging, `n${this.seq++}`);
  }

  /** Creates a FIFO at dst; throws if mkfifo is missing or fails. */
  fifo(dst: Buffer): void {
    const tool = findTool("mkfifo");
    if (!tool) throw new Error("mkfifo not found");
    const tmp = this.stage();
    const r = runTool(tool, ["-m", "600", tmp]);
    if (!r.ok) throw new Error(`mkfifo: ${r.error}`);
    fs.renameSync(tmp, dst);
  }

  /** Creates a character or block device node at dst (needs root). */
  device(dst: Buffer, kind: "c" | "b", major: number, minor: number): void {
    const tool = findTool("mknod");
    if (!tool) throw new Error("mknod not found");
    const tmp = this.stage();
    const r = runTool(tool, ["-m", "600", tmp, kind, String(major), String(minor)]);
    if (!r.ok) throw new Error(`mknod: ${r.error}`);
    fs.renameSync(tmp, dst);
  }

  dispose(): void {
    if (this.staging) fs.rmSync(this.staging, { recursive: true, force: true });
    this.staging = null;
  }
}

/** Escapes bytes for setfattr --restore: anything but [A-Za-z0-9._/+-] as \ooo. */
function octalEscape(b: Uint8Array): string {
  let s = "";
  for (const c of b) {
    const safe = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2e || c === 0x5f || c === 0x2f || c === 0x2b || c === 0x2d;
    s += safe ? String.fromCharCode(c) : `\\${c.toString(8).padStart(3, "0")}`;
  }
  return s;
}

export interface XattrJob { path: Buffer; name: string; value: Uint8Array }

/**
 * Sets xattrs with one `setfattr --restore=-` run. Returns null on success, or
 * why some or all were not set (setfattr missing, or its first error line).
 */
export function restoreXattrs(jobs: XattrJob[]): string | null {
  if (jobs.length === 0) return null;
  const tool = findTool("setfattr");
  if (!tool) return "setfattr not found (install the 'attr' package)";
  const parts: string[] = [];
  let last: Buffer | null = null;
  for (const j of jobs) {
    if (!last || !last.equals(j.path)) {
      if (last) parts.push("");
      parts.push(`# file: ${octalEscape(j.path)}`);
      last = j.path;
    }
    parts.push(`${octalEscape(Buffer.from(j.name, "utf8"))}=0s${Buffer.from(j.value).toString("base64")}`);
  }
  parts.push("", "");
  const r = runTool(tool, ["--restore=-"], Buffer.from(parts.join("\n"), "latin1"));
  return r.ok ? null : `setfattr: ${r.error}`;
}

/** POSIX ACL xattrs: the owner (or root) may set them where the host filesystem takes ACLs. */
export function isPosixAcl(name: string): boolean {
  return name === "system.posix_acl_access" || name === "system.posix_acl_default";
}
