// chmod(1)'s MODE argument: octal ("755", "0644", "4755") or symbolic
// ("u+x", "go-w", "a=rX", "u=rw,g=r,o=", "+t"), applied to a file's mode
// as coreutils does (without a "who", the umask does not apply here: an
// image has no umask, so "+x" means "a+x").

import { UsageError } from "./errors.js";

const S_IFDIR = 0o040000;

/** The new permission bits (12 bits) for a file of `mode`, or a UsageError for a bad MODE. */
export function applyMode(spec: string, mode: number): number {
  const isDir = (mode & 0o170000) === S_IFDIR;
  if (/^[0-7]{1,5}$/.test(spec)) {
    const n = parseInt(spec, 8);
    if (n > 0o7777) throw new UsageError(`chmod: invalid mode '${spec}'`);
    // coreutils: a numeric mode of up to four digits sets, but never clears, a directory's setuid/setgid bits.
    return isDir && spec.length <= 4 ? n | (mode & 0o6000) : n;
  }
  let bits = mode & 0o7777;
  for (const clause of spec.split(",")) {
    const m = /^([ugoa]*)((?:[-+=][rwxXst]*|[-+=][ugo])+)$/.exec(clause);
    if (!m) throw new UsageError(`chmod: invalid mode '${spec}'`);
    let who = 0;
    for (const c of m[1]) who |= c === "u" ? 0o4700 : c === "g" ? 0o2070 : c === "o" ? 0o1007 : 0o7777;
    if (who === 0) who = 0o7777;
    for (const op of m[2].match(/[-+=][^-+=]*/g) ?? []) {
      const perms = op.slice(1);
      let p = 0;
      if (perms === "u" || perms === "g" || perms === "o") {
        // Copy another class's bits: "g=u".
        const shift = perms === "u" ? 6 : perms === "g" ? 3 : 0;
        const rwx = (bits >> shift) & 7;
        p = (rwx << 6) | (rwx << 3) | rwx;
      } else {
        for (const c of perms) {
          if (c === "r") p |= 0o444;
          else if (c === "w") p |= 0o222;
          else if (c === "x") p |= 0o111;
          else if (c === "X") { if (isDir || (bits & 0o111)) p |= 0o111; }
          else if (c === "s") p |= 0o6000;
          else if (c === "t") p |= 0o1000;
        }
      }
      p &= who;
      if (op[0] === "+") bits |= p;
      else if (op[0] === "-") bits &= ~p;
      else {
        // coreutils: "=" keeps a directory's setuid/setgid unless the clause names "s".
        const keep = isDir && !perms.includes("s") ? 0o6000 : 0;
        bits = (bits & ~(who & 0o7777 & ~keep)) | p;
      }
    }
  }
  return bits & 0o7777;
}
