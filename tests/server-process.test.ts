// The nats-server launcher the scenario runner and the tests use: a server that never reports its port
// is killed and its own store folder removed, so a failed launch leaves nothing behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchNatsServer } from "../runtime/nats/server-process.ts";

test("a server that does not report its port in time is gone, and so is its store folder", async () => {
  const parent = mkdtempSync(join(tmpdir(), "weir-launch-"));
  const elsewhere = mkdtempSync(join(tmpdir(), "weir-ports-"));
  const saved = process.env.TMPDIR;
  try {
    // The launcher makes its folder under os.tmpdir(); the ports file goes to `elsewhere` (the later flag
    // wins), so the launcher never sees the port and gives up at its deadline.
    process.env.TMPDIR = parent;
    const error = await launchNatsServer({ args: ["--ports_file_dir", elsewhere], startTimeoutMs: 500 }).then(
      async (s) => { await s.stop(); return "started"; },
      (e: Error) => e.message,
    );
    process.env.TMPDIR = saved;
    assert.match(error, /did not report its port within 500 ms/);
    assert.equal(readdirSync(parent), [], "the launcher's store folder is removed");
    const left = spawnSync("pgrep", ["-f", parent], { encoding: "utf8" }).stdout.trim();
    assert.is(left, "", "no nats-server left running on that store");
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    // A server left on this test's own folder (the launcher failed to end it): killed by its pid.
    for (const pid of spawnSync("pgrep", ["-f", parent], { encoding: "utf8" }).stdout.split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
    rmSync(parent, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test.run();
