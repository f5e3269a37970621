// The result of mapping logical blocks of a file to the device: the one
// `mapBlocks` answer both buffered I/O paths consume.

export const enum MapKind { Hole = 0, Mapped = 1, Unwritten = 2 }

export interface BlockMapping {
  /** First logical block of the answer (the one asked for). */
  lblk: number;
  /** Blocks covered, >= 1. For a hole: up to the next mapped block (or the limit asked). */
  len: number;
  /** First physical block; 0 for holes. */
  pblk: number;
  kind: MapKind;
}
