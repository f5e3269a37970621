// `ext4wasm chown [-R] [-h] IMAGE OWNER[:GROUP] PATH...`: change owners,
// with user and group names looked up in the image's own account files.

import { IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { resolveOwner } from "../owner-arg.js";
import { walkTree } from "../walk-image.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "chown",
  usage: "IMAGE OWNER[:GROUP] PATH...",
  summary: "Change the owner and/or group of files in the image (names from the image's /etc/passwd and /etc/group, or numbers).",
  options: [
    { long: "recursive", short: "R", help: "change whole trees (symlinks inside are changed themselves, never followed)" },
    { long: "no-dereference", short: "h", help: "change a symlink named on the command line itself, not its target" },
    ...IMAGE_OPTIONS, { long: "help", help: "show this help (-h is --no-dereference here, as in coreutils)" },
  ],
  minArgs: 3,
  maxArgs: Infinity,
  notes: "OWNER forms as chown(1): USER, USER:GROUP, USER: (USER's login group), :GROUP.\nChanging the owner clears setuid and setgid bits as the kernel does.\n\nexample:\n  ext4wasm chown -R disk.img www-data:www-data /var/www\n  ext4wasm chown disk.img 0:0 /etc/shadow",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, owner, ...paths] = args.positionals;
  withWritableImage(image, imageOptions(args), (vol) => {
    const { uid, gid } = resolveOwner(vol, owner);
    for (const p of paths) {
      if (args.flags.has("no-dereference")) vol.lchownSync(p, uid, gid);
      else vol.chownSync(p, uid, gid);
      if (args.flags.has("recursive") && vol.lstatSync(p).isDirectory()) {
        walkTree(vol, vol.realpathSync(p) as string, (path) => vol.lchownSync(path, uid, gid));
      }
    }
  });
  return EXIT_OK;
}
