// A port for a server that is started again on the same port (a restarted cluster node, whose routes
// other nodes name; a restarted single server, whose URL its clients keep): one below the kernel's
// ephemeral range, which the kernel never gives an outgoing connection as its local port. A port picked by
// binding port 0 comes from that range, and while its server was down a client socket could take it: a
// restarted cluster node once failed with "bind: address already in use" on its route port. Also the
// one free-port helper (freePort) for servers started once.

import { readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";

/** The lowest port the kernel hands out on its own (ip_local_port_range), or Linux's default. */
function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Binds `port` on `host` (0: any free one) and releases it: the port it got, or the bind's error. */
function bindOnce(host: string, port: number): Promise<number | Error> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", resolve);
    s.listen(port, host, () => {
      const { port: bound } = s.address() as AddressInfo;
      s.close(() => resolve(bound));
    });
  });
}

/** A port free on `host` right now, from the kernel (for a server started once: --http, a test's server). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const port = await bindOnce(host, 0);
  if (port instanceof Error) throw port;
  return port;
}

/** A port free on `host` now, below the ephemeral range (any free port when that range starts too low to leave room). */
export async function stablePort(host = "127.0.0.1"): Promise<number> {
  const low = 10_000;
  const high = ephemeralRangeStart() - 1;
  for (let attempt = 0; high - low >= 1000 && attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (typeof (await bindOnce(host, port)) === "number") return port;
  }
  return freePort(host);
}
