// What an image stores for a host timestamp. mkfs -d and 128-byte inodes keep
// less than the host has; the comparison expects what the format can hold.

/** How an image stores host times: nanoseconds kept? which seconds range? */
export interface TimePolicy {
  keepsNsec: boolean;
  /** full: ext4's 34-bit range; wrap32: low 32 bits, sign-extended; clamp32: clamped to int32. */
  range: "full" | "wrap32" | "clamp32";
}
export const EXACT_TIMES: TimePolicy = { keepsNsec: true, range: "full" };

const NS = 1_000_000_000n;

/** Seconds rounded toward minus infinity, as struct timespec splits them. */
export const floorSec = (ns: bigint): bigint => (ns >= 0n ? ns / NS : -((-ns + NS - 1n) / NS));

/** The time an image should hold for a host time under a policy. */
export function expectedTimeNs(hostNs: bigint, p: TimePolicy): bigint {
  let sec = floorSec(hostNs);
  let nsec = hostNs - sec * NS;
  if (!p.keepsNsec) nsec = 0n;
  if (p.range === "wrap32") sec = BigInt.asIntN(32, sec);
  else if (p.range === "clamp32") sec = sec < -(2n ** 31n) ? -(2n ** 31n) : sec > 2n ** 31n - 1n ? 2n ** 31n - 1n : sec;
  return sec * NS + nsec;
}
