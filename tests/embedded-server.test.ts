// The embedded default server keeps its store where its config says (relative to the config file),
// whichever directory the command runs from.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EMBEDDED_SERVER_NAME, ensureEmbeddedServer, probePort } from "../runtime/nats/embedded.ts";
import { eventually, freePort } from "./helpers/cli.ts";

test("run from another directory, the store lands beside nats.conf, not in the current directory", async () => {
  const project = mkdtempSync(join(tmpdir(), "weir-project-"));
  const elsewhere = mkdtempSync(join(tmpdir(), "weir-cwd-"));
  const cwd = process.cwd();
  let pid: number | undefined;
  try {
    const port = await freePort();
    const shipped = readFileSync(new URL("../nats.conf", import.meta.url), "utf8");
    // The shipped config, on a free port and without its monitoring port.
    const config = shipped.replace(/^listen:.*$/m, `listen: 127.0.0.1:${port}`).replace(/^http:.*$/m, "");
    assert.match(config, /store_dir: "\.weir\/jetstream"/);
    writeFileSync(join(project, "nats.conf"), config);
    process.chdir(elsewhere);
    const server = await ensureEmbeddedServer({ configPath: join(project, "nats.conf") });
    pid = server.pid;
    assert.ok(server.started);
    const probe = await probePort("127.0.0.1", port);
    assert.equal(probe.kind === "nats" && probe.serverName, EMBEDDED_SERVER_NAME);
    await eventually("the store under the project", 30_000, () => (existsSync(join(project, ".weir", "jetstream")) ? true : undefined));
    assert.ok(existsSync(join(project, ".weir", "nats-server.pid")), "pid file beside the config");
    assert.not.ok(existsSync(join(elsewhere, ".weir")), "nothing in the current directory");
    assert.equal(await ensureEmbeddedServer({ configPath: join(project, "nats.conf") }), { url: `nats://127.0.0.1:${port}`, started: false }, "reused by its own checkout");
    // Another checkout with the same config (same port, same server name) must not use this one's store.
    writeFileSync(join(elsewhere, "nats.conf"), config);
    const other = await ensureEmbeddedServer({ configPath: join(elsewhere, "nats.conf") }).then(() => "reused", (e: Error) => e.message);
    assert.match(other, /taken by the embedded server of another weir checkout/);
    assert.not.ok(existsSync(join(elsewhere, ".weir", "jetstream")), "the other checkout got no store");
  } finally {
    process.chdir(cwd);
    if (pid !== undefined) {
      process.kill(pid, "SIGTERM");
      await eventually("the server gone", 30_000, () => { try { process.kill(pid!, 0); return undefined; } catch { return true; } });
    }
    rmSync(project, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test.run();
