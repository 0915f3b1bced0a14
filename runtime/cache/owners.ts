// Who owns a cache stream, and whether that owner is still alive. A process that dies before
// `env.close()` cannot delete its `weir_<job>_cache_<env>` stream, so every cache stream names its owner
// in the stream's description (stream metadata needs nats-server 2.10): host, pid, and a heartbeat time
// the environment refreshes while it is open.
//
// The rule: an owner is dead when it ran on this host and its pid is gone, or when its heartbeat is older
// than OWNER_STALE_MS (another host, a hung process, or a reused pid). Environments remove dead owners'
// cache streams when they create their own; `weir caches` lists them and drops them.

import { hostname } from "node:os";
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";

/** How often an open environment refreshes its cache stream's heartbeat. */
export const OWNER_HEARTBEAT_MS = 30_000;
/** A heartbeat older than this means the owner is gone (4 missed heartbeats). */
export const OWNER_STALE_MS = 4 * OWNER_HEARTBEAT_MS;

export interface CacheOwner {
  readonly weir: "cache";
  readonly job: string;
  readonly env: string;
  readonly host: string;
  readonly pid: number;
  /** Last heartbeat, ms since the epoch. */
  readonly beat: number;
}

export function ownerDescription(job: string, env: string, now = Date.now()): string {
  const owner: CacheOwner = { weir: "cache", job, env, host: hostname(), pid: process.pid, beat: now };
  return JSON.stringify(owner);
}

export function parseOwner(description: string | undefined): CacheOwner | undefined {
  if (!description) return undefined;
  try {
    const o = JSON.parse(description) as Partial<CacheOwner>;
    if (o.weir !== "cache" || typeof o.job !== "string" || typeof o.env !== "string" || typeof o.host !== "string" || typeof o.pid !== "number" || typeof o.beat !== "number") return undefined;
    return o as CacheOwner;
  } catch {
    return undefined;
  }
}

function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the pid exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export type Liveness = { readonly alive: boolean; readonly why: string };

/** The liveness rule (see the top of this file). `lastUse` stands in for a heartbeat when no owner is known. */
export function ownerLiveness(owner: CacheOwner | undefined, lastUse: number, now = Date.now()): Liveness {
  const beat = owner?.beat ?? lastUse;
  const age = Math.max(0, now - beat);
  if (owner && owner.host === hostname() && !pidRunning(owner.pid)) return { alive: false, why: `process ${owner.pid} on this host is gone` };
  if (age > OWNER_STALE_MS) return { alive: false, why: `no heartbeat for ${Math.round(age / 1000)} s` };
  return { alive: true, why: owner ? `process ${owner.pid} on ${owner.host}, heartbeat ${Math.round(age / 1000)} s ago` : `used ${Math.round(age / 1000)} s ago` };
}

export interface CacheStreamInfo {
  readonly stream: string;
  readonly job: string;
  readonly env: string;
  readonly bytes: number;
  readonly messages: number;
  readonly createdAt: number;
  readonly owner: CacheOwner | undefined;
  readonly liveness: Liveness;
}

const CACHE_STREAM = /^weir_(.+)_cache_([0-9a-f]+)$/;

/** Every cache stream on the server (optionally of one job), with its owner and whether it is alive. */
export async function listCacheStreams(jsm: JetStreamManager, job?: string, now = Date.now()): Promise<CacheStreamInfo[]> {
  const out: CacheStreamInfo[] = [];
  for await (const s of jsm.streams.list()) {
    const info = describeCacheStream(s, now);
    if (info && (job === undefined || info.job === job)) out.push(info);
  }
  return out.sort((a, b) => a.stream.localeCompare(b.stream));
}

function describeCacheStream(s: StreamInfo, now: number): CacheStreamInfo | undefined {
  const m = CACHE_STREAM.exec(s.config.name);
  if (!m) return undefined;
  const owner = parseOwner(s.config.description);
  const created = Date.parse(s.created);
  const last = Date.parse(s.state.last_ts);
  const lastUse = Math.max(Number.isNaN(created) ? 0 : created, Number.isNaN(last) ? 0 : last);
  return {
    stream: s.config.name,
    job: owner?.job ?? m[1]!,
    env: owner?.env ?? m[2]!,
    bytes: s.state.bytes,
    messages: s.state.messages,
    createdAt: Number.isNaN(created) ? 0 : created,
    owner,
    liveness: ownerLiveness(owner, lastUse, now),
  };
}

/** Deletes the cache streams whose owner is dead (never `keep`, the caller's own); returns what it removed. */
export async function dropDeadCaches(jsm: JetStreamManager, keep?: string): Promise<CacheStreamInfo[]> {
  const dropped: CacheStreamInfo[] = [];
  for (const c of await listCacheStreams(jsm)) {
    if (c.stream === keep || c.liveness.alive) continue;
    // Lost a race with another environment's sweep: gone either way.
    await jsm.streams.delete(c.stream).catch(() => {});
    dropped.push(c);
  }
  return dropped;
}
