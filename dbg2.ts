import { spawn, execFileSync } from "node:child_process";
import { connect } from "@nats-io/transport-node";
import { launchNatsServer } from "./runtime/nats/server-process.ts";
import { createStream, publishAll } from "./tests/helpers/streams.ts";
const server = await launchNatsServer();
const nc = await connect({ servers: server.url });
await createStream(nc, "IN", ["in.*"]);
const events = Array.from({ length: 20_000 }, (_, i) => ({ id: i, key: `k${(i * 31) % 101}` }));
await publishAll(nc, events.map((e) => [`in.${e.id % 2 ? "a" : "b"}`, e] as [string, unknown]));
const t0 = Date.now();
await new Promise<void>((resolve) => {
  const c = spawn(process.execPath, ["bin/weir.mjs", "run", "tests/fixtures/jobs/exactly-once-counts.ts", "--nats", server.url], { env: { ...process.env, CRASHY_BACKEND: process.argv[2] ?? "heap", CRASHY_CHECKPOINT_MS: "150" }, stdio: ["ignore", "inherit", "inherit"] });
  c.on("exit", () => resolve());
});
console.log("run took", Date.now() - t0);
console.log(execFileSync(process.execPath, ["bin/weir.mjs", "checkpoints", "crashy", "--nats", server.url]).toString());
await nc.close(); await server.stop();
