// weir's HTTP server (`weir run --http ADDR`): a small route table, so pages beside /metrics (a web
// dashboard) are added with addRoute rather than by editing a dispatcher. GET and HEAD only: nothing
// here changes a job.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ErrorCode, WeirError } from "../../core/errors.ts";

export interface RouteResponse {
  readonly status?: number;
  readonly contentType: string;
  readonly body: string;
}

export type RouteHandler = (request: IncomingMessage, url: URL) => Promise<RouteResponse> | RouteResponse;

/** Takes over the response (a server-sent-events stream): writes the head and keeps it open. */
export type StreamHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface HttpAddress { readonly host: string; readonly port: number }

/** The host when ADDR gives only a port: loopback, so metrics are not served to the network unless asked. */
export const DEFAULT_HTTP_HOST = "127.0.0.1";

/** `--http ADDR`: `host:port`, `:port` or `port` (host 127.0.0.1), `[v6]:port`; port 0 picks a free one. */
export function parseHttpAddress(text: string): HttpAddress {
  const t = text.trim();
  const bad = () => new WeirError(ErrorCode.InvalidOption, `--http expects host:port, :port or port, got "${text}"`);
  let host = DEFAULT_HTTP_HOST;
  let port = t;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(t);
  if (v6) [, host, port] = v6 as unknown as [string, string, string];
  else if (t.includes(":")) {
    const i = t.lastIndexOf(":");
    host = t.slice(0, i) || DEFAULT_HTTP_HOST;
    port = t.slice(i + 1);
    if (host.includes(":")) throw bad();
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535) throw bad();
  return { host, port: Number(port) };
}

export class HttpServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly streams = new Map<string, StreamHandler>();
  private server: Server | undefined;

  /** Serves GET `path` (exact match); a later route for the same path replaces the earlier one. */
  addRoute(path: string, handler: RouteHandler): this {
    this.routes.set(path, handler);
    return this;
  }

  /** Serves GET `path` as a long-lived response the handler writes to (closed by close()). */
  addStream(path: string, handler: StreamHandler): this {
    this.streams.set(path, handler);
    return this;
  }

  get paths(): string[] { return [...this.routes.keys(), ...this.streams.keys()]; }

  /** Listens; resolves with the bound address. A port in use is one clear error. */
  async listen(address: HttpAddress): Promise<HttpAddress> {
    // Nothing a client sends may end the process serving it (a `weir run` would end its job as a crash).
    const server = createServer((req, res) => { this.handle(req, res).catch(() => { if (!res.headersSent) reply(res, TEXT(500, "internal error\n"), req); else res.destroy(); }); });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        const why = e.code === "EADDRINUSE" ? "the port is in use" : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" ? "no such local address" : e.message;
        reject(new WeirError(e.code === "EADDRINUSE" ? ErrorCode.PortTaken : ErrorCode.InvalidOption, `--http ${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}: ${why}`, { cause: e }));
      });
      server.listen(address.port, address.host, () => resolve());
    });
    // Scrapes keep connections alive; they must not hold the process open at exit.
    server.unref();
    const bound = server.address() as AddressInfo;
    return { host: address.host, port: bound.port };
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      // A request target no URL takes (`//[`, a scanner's probe): Node's parser lets it through.
      return reply(res, TEXT(400, "bad request target\n"), req);
    }
    const route = this.routes.get(url.pathname);
    if (req.method !== "GET" && req.method !== "HEAD") return reply(res, TEXT(405, "only GET and HEAD\n"), req);
    const stream = req.method === "GET" ? this.streams.get(url.pathname) : undefined;
    if (stream) return stream(req, res);
    if (!route) return reply(res, TEXT(404, `not found; served: ${this.paths.join(", ")}\n`), req);
    try {
      reply(res, await route(req, url), req);
    } catch (e) {
      reply(res, TEXT(500, `${e instanceof Error ? e.message : String(e)}\n`), req);
    }
  }
}

export const TEXT = (status: number, body: string): RouteResponse => ({ status, contentType: "text/plain; charset=utf-8", body });

function reply(res: ServerResponse, r: RouteResponse, req: IncomingMessage): void {
  res.writeHead(r.status ?? 200, { "content-type": r.contentType, "content-length": Buffer.byteLength(r.body) });
  res.end(req.method === "HEAD" ? undefined : r.body);
}
