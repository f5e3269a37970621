// Type-checked (never run) by tests/runtimes.test.ts: a CommonJS consumer
// (import = require) must resolve the same declarations.
import ext4 = require("ext4wasm");
const vol: ext4.Volume = ext4.mount("/x.img", { readOnly: true });
const n: number = vol.readSync(vol.openSync("/f"), new Uint8Array(4));
export = [n, ext4.Ext4Error];
