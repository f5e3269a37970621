// Reading a host tree's xattrs (node:fs has no xattr calls): one
// `getfattr -R -P -d -m - -e base64 --absolute-names` run over the whole
// tree, parsed back into byte-exact paths (getfattr escapes bytes as \ooo).

import { spawnSync } from "node:child_process";
import { findTool } from "../get/host-tools.js";

export interface HostXattr { name: string; value: Uint8Array }

/** \ooo escapes back to bytes. */
function unescapeOctal(s: string): Buffer {
  const out: number[] = [];
  const bytes = Buffer.from(s, "latin1");
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x5c && i + 3 < bytes.length && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      out.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else out.push(bytes[i]);
  }
  return Buffer.from(out);
}

function decodeValue(v: string): Uint8Array {
  if (v.startsWith("0s")) return Buffer.from(v.slice(2), "base64");
  if (v.startsWith("0x")) return Buffer.from(v.slice(2), "hex");
  if (v.startsWith('"') && v.endsWith('"')) return unescapeOctal(v.slice(1, -1));
  return Buffer.from(v, "latin1");
}

/**
 * Every xattr under `top` (a host path), keyed by the path's bytes in
 * latin1 (a lossless string key), or why they cannot be read (getfattr
 * missing). Entries getfattr cannot read are left out, as cp -a leaves them.
 */
export function readHostXattrs(top: string): { byPath: Map<string, HostXattr[]> } | { error: string } {
  const tool = findTool("getfattr");
  if (!tool) return { error: "getfattr not found (install the 'attr' package)" };
  const r = spawnSync(tool, ["-R", "-P", "-d", "-m", "-", "-e", "base64", "--absolute-names", "--", top], { maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) return { error: `getfattr: ${r.error.message}` };
  // Exit status 1 with output: some entries could not be read (reported per entry on stderr); take what came.
  const byPath = new Map<string, HostXattr[]>();
  let current: HostXattr[] | null = null;
  for (const line of r.stdout.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      current = [];
      byPath.set(unescapeOctal(line.slice(8)).toString("latin1"), current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq <= 0) continue;
    current.push({ name: unescapeOctal(line.slice(0, eq)).toString("utf8"), value: decodeValue(line.slice(eq + 1)) });
  }
  return { byPath };
}
