// node:fs parity: the same calls against node:fs on a host tree and against
// a volume made from it (mkfs.ext4 -d) give the same results, the same error
// codes and the same message texts; callback forms, opendir/Dir, access with
// modes, file: URL and Buffer paths, and createReadStream's lazy open.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount, type Volume } from "../host/index.js";

let work: string;
let src: string;
let ro: Volume;
let rw: Volume;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-nodefs-"));
  src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "dir/sub"), { recursive: true });
  fs.writeFileSync(path.join(src, "hello.txt"), "hello world\n");
  fs.writeFileSync(path.join(src, "dir/a"), "a");
  fs.writeFileSync(path.join(src, "dir/b"), "b");
  fs.writeFileSync(path.join(src, "dir/sub/deep.txt"), "deep\n");
  fs.writeFileSync(path.join(src, "noexec.txt"), "x", { mode: 0o644 });
  fs.writeFileSync(path.join(src, "exec.sh"), "#!/bin/sh\n", { mode: 0o755 });
  fs.chmodSync(path.join(src, "noexec.txt"), 0o644);
  fs.chmodSync(path.join(src, "exec.sh"), 0o755);
  fs.symlinkSync("hello.txt", path.join(src, "link"));
  fs.symlinkSync("loop2", path.join(src, "loop1"));
  fs.symlinkSync("loop1", path.join(src, "loop2"));
  fs.symlinkSync("dir/sub", path.join(src, "dirlink"));
  fs.symlinkSync("/nowhere", path.join(src, "dangling"));
  execFileSync("mkfifo", [path.join(src, "fifo")]);
  const img = path.join(work, "a.img");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", src, img, "8M"]);
  ro = mount(img, { readOnly: true });
  rw = mount(new Uint8Array(fs.readFileSync(img)));
});

afterAll(() => {
  ro?.unmount();
  rw?.unmount();
  fs.rmSync(work, { recursive: true, force: true });
});

const host = (p: string) => path.join(src, p);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- either node:fs or a Volume, called alike
type AnyFs = any;

interface ErrShape { name: string; code: unknown; errno: unknown; syscall: unknown; message: string }
function caught(fn: () => unknown): ErrShape {
  try {
    fn();
  } catch (e) {
    const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
    return { name: x instanceof TypeError ? "TypeError" : x instanceof RangeError ? "RangeError" : "Error", code: x.code, errno: x.errno, syscall: x.syscall, message: x.message };
  }
  throw new Error("expected a throw");
}
/** node's error for the host path, with the host prefix taken out of its message so it reads as the volume's path. */
function hostErr(fn: () => unknown): ErrShape {
  const e = caught(fn);
  return { ...e, message: e.message.split(src).join("") };
}
function cbResult<T extends unknown[]>(start: (cb: (...r: T) => void) => void): Promise<T> {
  return new Promise((resolve) => start((...r) => resolve(r)));
}
const shape = (e: unknown) => {
  const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
  return { name: "Error", code: x.code, errno: x.errno, syscall: x.syscall, message: x.message };
};

// [what, call on the volume, call on node:fs] — each given a path.
const ERROR_CASES: [string, string, (f: typeof fs | Volume, p: string) => unknown][] = [
  ["stat missing", "/missing", (f, p) => f.statSync(p)],
  ["lstat missing", "/missing", (f, p) => f.lstatSync(p)],
  ["stat through a file", "/hello.txt/x", (f, p) => f.statSync(p)],
  ["stat a symlink loop", "/loop1", (f, p) => f.statSync(p)],
  ["readlink a file", "/hello.txt", (f, p) => f.readlinkSync(p)],
  ["readlink missing", "/missing", (f, p) => f.readlinkSync(p)],
  ["readdir a file", "/hello.txt", (f, p) => f.readdirSync(p)],
  ["readdir missing", "/missing", (f, p) => f.readdirSync(p)],
  ["readFile a directory", "/dir", (f, p) => f.readFileSync(p)],
  ["readFile missing", "/missing", (f, p) => f.readFileSync(p)],
  ["open missing", "/missing", (f, p) => f.openSync(p, "r")],
  ["realpath missing", "/dir/missing", (f, p) => f.realpathSync(p)],
  ["realpath under a missing directory", "/missing/x", (f, p) => f.realpathSync(p)],
  ["realpath through a file", "/hello.txt/x", (f, p) => f.realpathSync(p)],
  ["realpath a symlink loop", "/loop1", (f, p) => f.realpathSync(p)],
  ["realpath a dangling symlink", "/dirlink/../dangling", (f, p) => f.realpathSync(p)],
  ["access missing", "/missing", (f, p) => f.accessSync(p)],
  ["access X_OK without x bits", "/noexec.txt", (f, p) => f.accessSync(p, fs.constants.X_OK)],
  ["name too long", `/${"n".repeat(300)}`, (f, p) => f.statSync(p)],
];

describe("errors as node:fs words them", () => {
  it.each(ERROR_CASES)("%s", (_what, p, call) => {
    const want = hostErr(() => call(fs, host(p.slice(1))));
    expect(caught(() => call(ro, p))).toEqual(want);
  });

  it("realpath resolves as node's does (\"..\" lexically, trailing slashes dropped)", () => {
    const real = fs.realpathSync(src);
    for (const p of ["/", "/link", "/link/", "/dirlink", "/dirlink/deep.txt", "/dirlink/..", "/dir/./sub//deep.txt", "/dirlink/../dir/a"]) {
      const want = fs.realpathSync(host(p.slice(1)) + (p.endsWith("/") ? "/" : "")).slice(real.length) || "/";
      expect(ro.realpathSync(p), p).toBe(want);
    }
    expect(ro.realpathSync(Buffer.from("/dirlink"), "buffer")).toEqual(Buffer.from("/dir/sub"));
    expect(ro.realpathSync("/../hello.txt")).toBe("/hello.txt"); // ".." at the root stays there, as path.resolve says
  });

  it("fd errors: EBADF for read, fstat, close", () => {
    for (const call of [(f: typeof fs | Volume) => f.readSync(999, Buffer.alloc(1)), (f: typeof fs | Volume) => f.fstatSync(999), (f: typeof fs | Volume) => f.closeSync(999)]) {
      expect(caught(() => call(ro))).toEqual(caught(() => call(fs)));
    }
  });

  it("argument errors are node's TypeErrors", () => {
    for (const bad of [42, null, {}, "/a\0b", Buffer.from("/a\0b")]) {
      expect(caught(() => ro.statSync(bad as never)), String(bad)).toEqual(caught(() => fs.statSync(bad as never)));
    }
    for (const mode of [99, "r", -1]) {
      expect(caught(() => ro.accessSync("/hello.txt", mode as never)), String(mode)).toEqual(caught(() => fs.accessSync(host("hello.txt"), mode as never)));
    }
    expect(caught(() => ro.stat("/hello.txt", undefined as never))).toEqual(caught(() => fs.stat(host("hello.txt"), undefined as never)));
    expect(caught(() => ro.stat(42 as never, () => {}))).toEqual(caught(() => fs.stat(42 as never, () => {})));
  });
});

describe("paths as file: URLs and Buffers", () => {
  it("take file: URLs (percent-decoded) and Buffers wherever a path goes", () => {
    const url = new URL("file:///dir/sub/deep.txt");
    expect(ro.readFileSync(url, "utf8")).toBe("deep\n");
    expect(ro.statSync(new URL("file:///hello.txt")).size).toBe(12);
    expect(ro.existsSync(new URL("file:///dir"))).toBe(true);
    expect(ro.readdirSync(new URL("file:///dir/"))).toEqual(fs.readdirSync(pathToFileURL(host("dir") + "/")));
    const b = Buffer.from("/link");
    expect(ro.readlinkSync(b)).toBe("hello.txt");
    expect(ro.realpathSync(b)).toBe("/hello.txt");
    expect(ro.readFileSync(b, "utf8")).toBe("hello world\n");
    expect(ro.readdirSync(Buffer.from("/dir"))).toEqual(["a", "b", "sub"]);
    expect(() => ro.accessSync(Buffer.from("/hello.txt"), fs.constants.R_OK)).not.toThrow();
    expect(ro.opendirSync(Buffer.from("/dir")).readSync()).not.toBeNull();
    // Errors name the decoded path.
    expect(caught(() => ro.statSync(new URL("file:///no%20such")))).toEqual(hostErr(() => fs.statSync(pathToFileURL(host("no such")))));
  });

  it("refuse other URL schemes, hosts and encoded slashes as node does", () => {
    for (const u of ["http://x/y", "file://host/y", "file:///a%2fb"]) {
      expect(caught(() => ro.statSync(new URL(u))), u).toEqual(caught(() => fs.statSync(new URL(u))));
    }
  });
});

describe("access with modes", () => {
  it("W_OK is EROFS on a read-only volume (not on its FIFO), allowed on a read-write one", async () => {
    const { W_OK, R_OK, X_OK } = fs.constants;
    expect(caught(() => ro.accessSync("/hello.txt", W_OK))).toEqual({ name: "Error", code: "EROFS", errno: -30, syscall: "access", message: "EROFS: read-only file system, access '/hello.txt'" });
    await expect(ro.promises.access("/dir", W_OK)).rejects.toMatchObject({ code: "EROFS" });
    expect(() => ro.accessSync("/fifo", W_OK)).not.toThrow(); // sb_permission leaves devices and FIFOs writable
    expect(() => ro.accessSync("/hello.txt", R_OK)).not.toThrow();
    expect(() => rw.accessSync("/hello.txt", R_OK | W_OK)).not.toThrow();
    await expect(rw.promises.access("/hello.txt", W_OK)).resolves.toBeUndefined();
    // As this process sees it on the host (the suite runs as root: R and W always, X needs an x bit).
    for (const [p, m] of [["exec.sh", X_OK], ["dir", X_OK], ["noexec.txt", R_OK | W_OK], ["link", R_OK]] as const) {
      const hostOk = (() => { try { fs.accessSync(host(p), m); return true; } catch { return false; } })();
      const volOk = (() => { try { rw.accessSync(`/${p}`, m); return true; } catch { return false; } })();
      expect(volOk, `${p} mode ${m}`).toBe(hostOk);
    }
    expect(ro.constants.X_OK).toBe(fs.constants.X_OK);
  });
});

describe("methods taken off the volume", () => {
  it("work unbound, as node:fs functions do (code that takes an fs module destructures it)", async () => {
    const { readFileSync, statSync, readdirSync, existsSync, readdir, promises } = ro;
    expect(readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
    expect(statSync("/hello.txt").size).toBe(12);
    expect(readdirSync("/dir")).toEqual(["a", "b", "sub"]);
    expect(existsSync("/missing")).toBe(false);
    expect((await cbResult((cb) => readdir("/dir", cb as never)))[1]).toEqual(["a", "b", "sub"]);
    const { readFile, stat } = promises;
    expect(await readFile("/hello.txt", "utf8")).toBe("hello world\n");
    expect((await stat("/hello.txt")).size).toBe(12);
    const { opendirSync } = ro;
    const dir = opendirSync("/dir");
    expect(dir.readSync()?.name).toBeDefined();
    dir.closeSync();
  });
});

describe("callback forms", () => {
  it("give the sync results through the callback, on a later turn", async () => {
    let calledBeforeReturn = false;
    let returned = false;
    const p = cbResult<[Error | null, unknown]>((cb) => ro.readFile("/hello.txt", "utf8", ((...a: unknown[]) => { if (!returned) calledBeforeReturn = true; (cb as (...x: unknown[]) => void)(...a); }) as never));
    returned = true;
    const [err, data] = await p;
    expect(calledBeforeReturn).toBe(false);
    expect(err).toBeNull();
    expect(data).toBe("hello world\n");
    expect((await cbResult((cb) => ro.readFile("/hello.txt", cb as never)))[1]).toEqual(Buffer.from("hello world\n"));
    expect(((await cbResult((cb) => ro.stat("/hello.txt", cb as never)))[1] as fs.Stats).size).toBe(12);
    expect(((await cbResult((cb) => ro.lstat("/link", cb as never)))[1] as fs.Stats).isSymbolicLink()).toBe(true);
    expect(((await cbResult((cb) => ro.stat("/hello.txt", { bigint: true }, cb as never)))[1] as fs.BigIntStats).size).toBe(12n);
    expect((await cbResult((cb) => ro.readdir("/dir", cb as never)))[1]).toEqual(["a", "b", "sub"]);
    expect(((await cbResult((cb) => ro.readdir("/dir", { withFileTypes: true }, cb as never)))[1] as fs.Dirent[]).map((d) => d.isDirectory())).toEqual([false, false, true]);
    expect((await cbResult((cb) => ro.readlink("/link", cb as never)))[1]).toBe("hello.txt");
    expect((await cbResult((cb) => ro.realpath("/link", cb as never)))[1]).toBe("/hello.txt");
    expect(await cbResult((cb) => ro.access("/hello.txt", cb as never))).toEqual([null]);
    expect(await cbResult((cb) => ro.exists("/hello.txt", cb as never))).toEqual([true]);
    expect(await cbResult((cb) => ro.exists("/missing", cb as never))).toEqual([false]);

    const [, fd] = await cbResult<[Error | null, number]>((cb) => ro.open("/hello.txt", "r", cb as never));
    const buf = Buffer.alloc(5);
    const [rerr, n, b] = await cbResult<[Error | null, number, Buffer]>((cb) => ro.read(fd, buf, 0, 5, 6, cb as never));
    expect([rerr, n, b.toString()]).toEqual([null, 5, "world"]);
    const [, n2, b2] = await cbResult<[Error | null, number, Buffer]>((cb) => ro.read(fd, { buffer: Buffer.alloc(4), position: 0 }, cb as never));
    expect([n2, b2.toString()]).toEqual([4, "hell"]);
    expect(((await cbResult((cb) => ro.fstat(fd, cb as never)))[1] as fs.Stats).size).toBe(12);
    expect(await cbResult((cb) => ro.close(fd, cb as never))).toEqual([null]);
  });

  it("pass errors to the callback, never throw them, as node's do", async () => {
    for (const [what, p, call] of [
      ["readFile missing", "/missing", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.readFile(q, cb)],
      ["stat loop", "/loop1", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.stat(q, cb)],
      ["lstat missing", "/missing", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.lstat(q, cb)],
      ["readdir a file", "/hello.txt", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.readdir(q, cb)],
      ["readlink a file", "/hello.txt", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.readlink(q, cb)],
      ["realpath missing", "/missing", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.realpath(q, cb)],
      ["access missing", "/missing", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.access(q, cb)],
      ["open missing", "/missing", (f: AnyFs, q: string, cb: (e: Error | null) => void) => f.open(q, cb)],
    ] as const) {
      const [mine] = await cbResult<[Error | null]>((cb) => call(ro, p, cb));
      const [theirs] = await cbResult<[Error | null]>((cb) => call(fs, host(p.slice(1)), cb));
      expect(shape(mine), what).toEqual({ ...shape(theirs), message: theirs!.message.split(src).join("") });
    }
    const [e] = await cbResult<[Error | null]>((cb) => ro.close(999, cb));
    expect(shape(e)).toEqual(shape((await cbResult<[Error | null]>((cb) => fs.close(999, cb)))[0]));
  });
});

describe("opendir and Dir", () => {
  it("reads entries by readSync, promise, callback and async iteration; closes like node's", async () => {
    const names = fs.readdirSync(host("dir")).sort();
    const d = ro.opendirSync("/dir");
    expect(d.path).toBe("/dir");
    const seen: string[] = [];
    const first = d.readSync()!;
    seen.push(first.name as string);
    expect(first.parentPath).toBe("/dir");
    seen.push((await d.read())!.name as string);
    const [err, third] = await cbResult<[Error | null, fs.Dirent | null]>((cb) => d.read(cb as never));
    expect(err).toBeNull();
    seen.push(third!.name);
    expect(d.readSync()).toBeNull();
    expect(seen.sort()).toEqual(names);
    d.closeSync();
    const hd = fs.opendirSync(host("dir"));
    hd.closeSync();
    expect(caught(() => d.closeSync())).toEqual(caught(() => hd.closeSync()));
    expect(caught(() => d.readSync())).toEqual(caught(() => hd.readSync()));
    await expect(d.close()).rejects.toMatchObject({ code: "ERR_DIR_CLOSED" });
    expect(caught(() => d.read())).toEqual(caught(() => hd.read()));
    expect(caught(() => d.read(() => {}))).toEqual(caught(() => hd.read(() => {})));

    const it: string[] = [];
    for await (const e of await ro.promises.opendir("/dir")) it.push(e.name as string);
    expect(it.sort()).toEqual(names);
    const [cerr, cd] = await cbResult<[Error | null, { readSync(): unknown; close(): Promise<void> }]>((cb) => ro.opendir("/dir", cb as never));
    expect(cerr).toBeNull();
    expect(cd.readSync()).not.toBeNull();
    await cd.close();
  });

  it("fails as node's opendir does", async () => {
    for (const [p, code] of [["/missing", "ENOENT"], ["/hello.txt", "ENOTDIR"]]) {
      const mine = caught(() => ro.opendirSync(p));
      const theirs = caught(() => fs.opendirSync(host(p.slice(1))));
      // (node 20 leaves the path out of opendir's message; ours keeps it.)
      expect([mine.code, mine.syscall, mine.errno]).toEqual([theirs.code, theirs.syscall, theirs.errno]);
      expect(mine.code).toBe(code);
      const [e] = await cbResult<[Error | null]>((cb) => ro.opendir(p, cb as never));
      expect((e as { code?: string }).code).toBe(code);
    }
  });
});

describe("createReadStream", () => {
  function drain(s: NodeJS.ReadableStream & { on: (ev: string, f: (...a: unknown[]) => void) => unknown }): Promise<{ events: string[]; data: string; error?: ErrShape }> {
    return new Promise((resolve) => {
      const events: string[] = [];
      let data = "";
      let error: ErrShape | undefined;
      for (const ev of ["open", "ready", "end", "close"]) s.on(ev, () => { if (events[events.length - 1] !== ev) events.push(ev); if (ev === "close") resolve({ events, data, error }); });
      s.on("data", (c) => { data += String(c); if (events[events.length - 1] !== "data") events.push("data"); });
      s.on("error", (e) => { error = { ...shape(e), message: (e as Error).message.split(src).join("") }; events.push("error"); });
    });
  }

  it("of a missing path emits 'error' (no throw), as node's does", async () => {
    let s!: ReturnType<Volume["createReadStream"]>;
    expect(() => { s = ro.createReadStream("/missing"); }).not.toThrow();
    expect(s.pending).toBe(true);
    expect(await drain(s)).toEqual(await drain(fs.createReadStream(host("missing"))));
  });

  it("emits open and ready, honours start/end and an fd, as node's", async () => {
    expect(await drain(ro.createReadStream("/hello.txt"))).toEqual(await drain(fs.createReadStream(host("hello.txt"))));
    const part = await drain(ro.createReadStream("/hello.txt", { start: 6, end: 9 }));
    expect(part).toEqual(await drain(fs.createReadStream(host("hello.txt"), { start: 6, end: 9 })));
    expect(part.data).toBe("worl");
    const fd = ro.openSync("/hello.txt");
    const byFd = await drain(ro.createReadStream(null, { fd, start: 6 }));
    expect(byFd).toEqual({ events: ["data", "end", "close"], data: "world\n", error: undefined });
    expect(caught(() => ro.fstatSync(fd)).code).toBe("EBADF"); // autoClose closed it
    expect(await drain(ro.createReadStream("/dir"))).toEqual(await drain(fs.createReadStream(host("dir"))));
    expect(caught(() => ro.createReadStream("/hello.txt", { start: 5, end: 2 }))).toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    expect(caught(() => fs.createReadStream(host("hello.txt"), { start: 5, end: 2 }))).toMatchObject({ code: "ERR_OUT_OF_RANGE" });
  });
});
