// `ext4wasm put IMAGE HOSTPATH DEST`: copy a host file or whole tree into the
// image, as `cp -a` would copy it into a mounted filesystem.

import * as path from "node:path";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK, warn } from "../errors.js";
import { joinPath } from "../format.js";
import { imageOptions } from "../image.js";
import { toJson, type Output } from "../output.js";
import { TreeImporter } from "../put/copy-in.js";
import { PutProgress } from "../put/progress.js";
import { credScope } from "../../vfs/context.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "put",
  usage: "IMAGE HOSTPATH DEST",
  summary: "Copy HOSTPATH (a file or a whole tree) into the image as DEST, preserving what cp -a does.",
  options: [
    { long: "quiet", short: "q", help: "no progress bar on stderr (drawn only when stderr is a terminal)" },
    ...IMAGE_OPTIONS, { long: "json", help: "print a JSON summary (entries, bytes, warnings) on stdout" }, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: [
    "If DEST is an existing directory the copy goes inside it (DEST/<name of HOSTPATH>; HOSTPATH",
    "ending in /. copies its contents into DEST); else the copy is created as DEST. Kept: bytes,",
    "holes of sparse files, all 12 mode bits, symlinks, hard links, FIFOs, sockets and device",
    "nodes (no root needed: they are made in the image), xattrs (via getfattr), owners (as root;",
    "otherwise yours, as cp), atime and mtime to the nanosecond. Existing files are replaced,",
    "directories merged into. All or nothing: if anything fails, the image is left as it was.",
    "",
    "example:",
    "  ext4wasm put disk.img ./rootfs/. /",
    "  ext4wasm put disk.img app.conf /etc/app.conf",
  ].join("\n"),
};

export function run(args: ParsedArgs, out: Output): number {
  const [image, src, dest] = args.positionals;
  const json = args.flags.has("json");
  // A bar on stderr when it is a terminal (and not -q); erased before any error line.
  const progress = new PutProgress(args.flags.has("quiet"));
  let result;
  try {
    result = withWritableImage(image, imageOptions(args), (vol) => {
      // Like cp: into an existing directory, else the copy is DEST itself.
      const base = path.basename(path.resolve(src));
      const into = vol.statSync(dest, { throwIfNoEntry: false })?.isDirectory() && path.basename(src) !== ".";
      const target = into ? joinPath(Buffer.from(dest), Buffer.from(base)) : Buffer.from(dest);
      // One scope for the whole copy: this process never changes its ids while it runs (see vfs/context.ts).
      const r = credScope(() => new TreeImporter(vol, { progress }).run(src, target));
      progress.stage("writing back"); // the unmount that follows writes the data and commits
      return r;
    });
  } finally {
    progress.done();
  }
  if (json) out.line(toJson({ entries: result.entries, bytes: result.bytes, warnings: result.warnings }));
  else for (const w of result.warnings) warn(w);
  return EXIT_OK;
}
