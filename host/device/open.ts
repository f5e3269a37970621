// Picks the file device for the running runtime.

import { BlockDevice } from "./block-device.js";
import { DenoFileDevice, isDeno } from "./deno-file-device.js";
import { NodeFileDevice } from "./node-file-device.js";

export function openFileDevice(path: string, readOnly: boolean): BlockDevice {
  return isDeno ? new DenoFileDevice(path, readOnly) : new NodeFileDevice(path, readOnly);
}
