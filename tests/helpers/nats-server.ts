// A real nats-server per test file: random port, own store directory, always stopped.
//   await using server = await startServer();
// or, for a uvu suite, `const server = withServer(suite)` to start it in `before` and stop it in `after`.

import type { Test } from "uvu";
import { launchNatsServer, type NatsServerProcess } from "../../runtime/nats/server-process.ts";

export { launchNatsServer as startServer };

export function withServer<T>(s: Test<T>): { readonly url: string; readonly server: NatsServerProcess } {
  let server: NatsServerProcess | undefined;
  s.before(async () => { server = await launchNatsServer(); });
  s.after(async () => { await server?.stop(); });
  return {
    get url() { if (!server) throw new Error("server not started"); return server.url; },
    get server() { if (!server) throw new Error("server not started"); return server; },
  };
}

export { RestartableServer } from "../../runtime/nats/restartable-server.ts";
