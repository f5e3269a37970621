// `ext4wasm touch [-c] [-a|-m] [-d DATE] IMAGE PATH...`: set times, making
// missing files empty, as touch(1).

import { IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK, UsageError } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "touch",
  usage: "IMAGE PATH...",
  summary: "Set access and modification times (to now, or -d DATE), creating missing files empty.",
  options: [
    { long: "no-create", short: "c", help: "do not create missing files" },
    { long: "access", short: "a", help: "change only the access time" },
    { long: "modify", short: "m", help: "change only the modification time" },
    { long: "date", short: "d", value: "DATE", help: "use DATE (ISO 8601, or @SECONDS[.FRACTION]) instead of now" },
    { long: "no-dereference", short: "h", help: "change a symlink itself, not its target" },
    ...IMAGE_OPTIONS, { long: "help", help: "show this help (-h is --no-dereference here, as in coreutils)" },
  ],
  minArgs: 2,
  maxArgs: Infinity,
  notes: "example:\n  ext4wasm touch disk.img /etc/.updated\n  ext4wasm touch -d 2024-01-01T00:00:00Z disk.img /etc/os-release\n  ext4wasm touch -d @1700000000.5 disk.img /boot/stamp",
};

/** A DATE as nanoseconds since the epoch (utimes takes a bigint exactly), exact for "@S.F". */
export function parseDate(text: string): bigint {
  const at = /^@(-?)(\d+)(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (at) {
    const ns = BigInt(at[2]) * 1_000_000_000n + BigInt((at[3] ?? "").padEnd(9, "0"));
    return at[1] ? -ns : ns;
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`touch: invalid date '${text}': expected ISO 8601 (2024-01-31T12:00:00Z) or @SECONDS`);
  return BigInt(ms) * 1_000_000n;
}

export function run(args: ParsedArgs, _out: Output): number {
  const [image, ...paths] = args.positionals;
  const d = args.flags.get("date");
  const when = typeof d === "string" ? parseDate(d) : undefined;
  const onlyA = args.flags.has("access") && !args.flags.has("modify");
  const onlyM = args.flags.has("modify") && !args.flags.has("access");
  const noDeref = args.flags.has("no-dereference");
  withWritableImage(image, imageOptions(args), (vol) => {
    for (const p of paths) {
      const stat = () => noDeref ? vol.lstatSync(p, { bigint: true, throwIfNoEntry: false }) : vol.statSync(p, { bigint: true, throwIfNoEntry: false });
      let st = stat();
      if (!st) {
        if (args.flags.has("no-create")) continue;
        vol.closeSync(vol.openSync(p, "a"));
        if (when === undefined) continue; // created now: its times are now already
        st = stat()!;
      }
      const now = when ?? BigInt(Date.now()) * 1_000_000n;
      // An unchanged time is given back as it is, to the nanosecond.
      const keepA = st.atimeNs;
      const keepM = st.mtimeNs;
      const atime = onlyM ? keepA : now;
      const mtime = onlyA ? keepM : now;
      if (noDeref) vol.lutimesSync(p, atime, mtime);
      else vol.utimesSync(p, atime, mtime);
    }
  });
  return EXIT_OK;
}
