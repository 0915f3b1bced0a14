// `weir nats`: starts (or finds) the embedded default server and prints its URL.

import { ensureEmbeddedServer } from "../../nats/embedded.ts";

export async function natsCommand(): Promise<number> {
  const s = await ensureEmbeddedServer();
  process.stdout.write(`${s.url}\n`);
  process.stderr.write(s.started ? `weir: started nats-server (pid ${s.pid}), store under .weir/\n` : "weir: nats-server already running\n");
  return 0;
}
