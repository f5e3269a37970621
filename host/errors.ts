// Ext4Error: node:fs-style errors (code, errno, syscall, path) for everything
// the engine refuses: bad paths, bad options, corrupt metadata, I/O failures.

const ERRNO: Record<string, number> = {
  EPERM: 1, ENOENT: 2, EIO: 5, E2BIG: 7, EBADF: 9, ENOMEM: 12, EACCES: 13, EEXIST: 17, EXDEV: 18,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30, EMLINK: 31,
  ERANGE: 34, ENAMETOOLONG: 36, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, EFSBADCRC: 74, EOVERFLOW: 75,
  EOPNOTSUPP: 95, EFSCORRUPTED: 117, ENOKEY: 126,
  EBUSY: 16, ENOTSUP: 95,
};

export type Ext4ErrorCode = keyof typeof ERRNO | string;

export interface Ext4ErrorDetails {
  syscall?: string;
  path?: string;
  /** Filesystem block the problem was found in, where one applies. */
  block?: number;
  /** Inode the problem was found in, where one applies. */
  ino?: number;
  cause?: unknown;
}

export class Ext4Error extends Error {
  readonly code: string;
  readonly errno: number;
  syscall?: string;
  path?: string;
  /** The second path of rename, link, symlink and copyfile, as node's errors carry it. */
  dest?: string;
  block?: number;
  ino?: number;

  constructor(code: Ext4ErrorCode, message: string, details: Ext4ErrorDetails = {}) {
    const where = [
      details.syscall ? `${details.syscall}` : "",
      details.path !== undefined ? `'${details.path}'` : "",
    ].filter(Boolean).join(" ");
    super(`${code}: ${message}${where ? `, ${where}` : ""}`, details.cause ? { cause: details.cause } : undefined);
    this.name = "Ext4Error";
    this.code = code;
    this.errno = -(ERRNO[code] ?? 0);
    if (details.syscall) this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
    if (details.block !== undefined) this.block = details.block;
    if (details.ino !== undefined) this.ino = details.ino;
  }
}

/** Metadata that fails a structural or checksum check. */
export function corrupted(message: string, details: Ext4ErrorDetails = {}): Ext4Error {
  const at = [details.ino !== undefined ? `inode ${details.ino}` : "", details.block !== undefined ? `block ${details.block}` : ""]
    .filter(Boolean).join(", ");
  return new Ext4Error("EFSCORRUPTED", at ? `${message} (${at})` : message, details);
}
