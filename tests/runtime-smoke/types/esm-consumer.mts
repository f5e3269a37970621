// Type-checked (never run) by tests/runtimes.test.ts: an ES-module consumer of
// the published package must get the declarations from dist/types via the
// "types" condition of package.json "exports".
import { mount, Ext4Error, type Volume, type MountOptions } from "ext4wasm";
const opts: MountOptions = { readOnly: true, mountOptions: "ro,buffered_iomap", cacheSize: 64 << 20 };
const vol: Volume = mount(new Uint8Array(0), opts);
const path: "bh" | "iomap" = vol.ioPathOf("/");
export const check = [path, vol.readdirSync("/").length, Ext4Error];
