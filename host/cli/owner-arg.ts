// chown(1)'s OWNER argument: "USER", "USER:GROUP", "USER:", ":GROUP", with
// names looked up in the IMAGE's /etc/passwd and /etc/group (the accounts
// that will own the files when the image boots, not the host's), and
// numbers taken as they are.

import type { Volume } from "../vfs/volume.js";
import { CliError, UsageError } from "./errors.js";

export interface Owner { uid: number; gid: number }

/** Name -> [id, login group] from a passwd/group style file in the image; empty when it is missing. */
function readTable(vol: Volume, path: string): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  let text: string;
  try { text = vol.readFileSync(path, "utf8") as string; } catch { return out; }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || f[0].startsWith("#")) continue;
    const id = Number(f[2]);
    if (Number.isInteger(id) && id >= 0 && !out.has(f[0])) out.set(f[0], [id, Number(f[3] ?? -1)]);
  }
  return out;
}

const ID_MAX = 0xfffffffe; // (u32)-1 means "no change" to chown(2)

function numeric(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  if (n > ID_MAX) throw new UsageError(`chown: invalid id '${text}'`);
  return n;
}

/** uid/gid as chown(2) takes them: -1 leaves that id as it is. */
export function resolveOwner(vol: Volume, spec: string): Owner {
  const colon = spec.indexOf(":") >= 0 ? spec.indexOf(":") : spec.indexOf(".");
  const user = colon < 0 ? spec : spec.slice(0, colon);
  const group = colon < 0 ? undefined : spec.slice(colon + 1);
  if (user === "" && (group === undefined || group === "")) throw new UsageError(`chown: invalid owner '${spec}'`);
  let uid = -1;
  let gid = -1;
  if (user !== "") {
    const n = numeric(user);
    const passwd = readTable(vol, "/etc/passwd");
    const e = n === undefined ? passwd.get(user) : [...passwd.values()].find(([id]) => id === n);
    if (n === undefined && !e) throw new CliError("EINVAL", `invalid user '${user}': not in the image's /etc/passwd`);
    uid = n ?? e![0];
    // "USER:" is USER and USER's login group, as chown(1).
    if (group === "") {
      if (!e || !(e[1] >= 0)) throw new CliError("EINVAL", `invalid spec '${spec}': user ${user} has no login group in the image's /etc/passwd`);
      gid = e[1];
    }
  }
  if (group) {
    const n = numeric(group);
    if (n !== undefined) gid = n;
    else {
      const e = readTable(vol, "/etc/group").get(group);
      if (!e) throw new CliError("EINVAL", `invalid group '${group}': not in the image's /etc/group`);
      gid = e[0];
    }
  }
  return { uid, gid };
}
