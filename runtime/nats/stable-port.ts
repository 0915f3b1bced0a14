// A port for a server that is started again on the same port (a restarted cluster node, whose routes
// other nodes name; a restarted single server, whose URL its clients keep): one below the kernel's
// ephemeral range, which the kernel never gives an outgoing connection as its local port. A port picked by
// binding port 0 comes from that range, and while its server was down a client socket could take it: a
// restarted cluster node once failed with "bind: address already in use" on its route port.

import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The lowest port the kernel hands out on its own (ip_local_port_range), or Linux's default. */
function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** A port free on `host` now, below the ephemeral range (any free port when that range starts too low to leave room). */
export async function stablePort(host = "127.0.0.1"): Promise<number> {
  const low = 10_000;
  const high = ephemeralRangeStart() - 1;
  for (let attempt = 0; high - low >= 1000 && attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (await bindable(host, port)) return port;
  }
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
