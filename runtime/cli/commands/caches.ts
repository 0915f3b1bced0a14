// `weir caches [job]`: the cached streams (DataStream.cache) on the NATS server: job, environment, size,
// age, and whether the environment that owns each is alive (runtime/cache/owners.ts has the rule).
// `--drop-dead` removes those of dead owners, `--drop <env>` one environment's, `--drop-all` every one
// listed (also those of live environments: their next execution computes its caches again).

import { jetstreamManager } from "@nats-io/jetstream";
import { listCacheStreams, type CacheStreamInfo } from "../../cache/owners.ts";
import { connectNats, resolveNatsConnection } from "../../nats/connect.ts";
import type { NatsFlags } from "../../nats/connection-settings.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";

export interface CachesFlags extends NatsFlags {
  readonly json?: boolean;
  readonly drop?: string;
  readonly dropAll?: boolean;
  readonly dropDead?: boolean;
}

const size = (bytes: number) => (bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`);
const age = (ms: number) => (ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)} h` : ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`);

export async function cachesCommand(job: string | undefined, flags: CachesFlags): Promise<number> {
  // One way of dropping at a time: with --drop-all beside another, live caches would go without a word.
  const ways = [flags.dropDead && "--drop-dead", flags.drop !== undefined && "--drop", flags.dropAll && "--drop-all"].filter(Boolean);
  if (ways.length > 1) throw new WeirError(ErrorCode.InvalidOption, `caches: ${ways.join(" and ")} together; give one`);
  const nc = await connectNats(await resolveNatsConnection({ flags }), "weir-cli");
  try {
    const jsm = await jetstreamManager(nc);
    const now = Date.now();
    const all = await listCacheStreams(jsm, job, now);
    const doomed = (c: CacheStreamInfo) => flags.dropAll === true || (flags.dropDead === true && !c.liveness.alive) || (flags.drop !== undefined && c.env === flags.drop);
    const dropping = flags.dropAll || flags.dropDead || flags.drop !== undefined;
    if (flags.drop !== undefined && !all.some((c) => c.env === flags.drop)) {
      process.stderr.write(`weir: no cache stream of environment "${flags.drop}"${job ? ` of job ${job}` : ""}\n`);
      return 1;
    }
    const dropped: string[] = [];
    for (const c of all) {
      if (!dropping || !doomed(c)) continue;
      await jsm.streams.delete(c.stream);
      dropped.push(c.stream);
    }
    if (flags.json) {
      const rows = all.map((c) => ({ stream: c.stream, job: c.job, env: c.env, bytes: c.bytes, messages: c.messages, createdAt: c.createdAt, owner: c.owner ? { host: c.owner.host, pid: c.owner.pid, heartbeat: c.owner.beat } : null, alive: c.liveness.alive, why: c.liveness.why, dropped: dropped.includes(c.stream) }));
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    if (all.length === 0) process.stdout.write(`no cache streams${job ? ` of job ${job}` : ""}\n`);
    for (const c of all) {
      const mark = dropped.includes(c.stream) ? " — dropped" : "";
      process.stdout.write(`${c.stream}: job ${c.job}, env ${c.env}, ${size(c.bytes)} in ${c.messages} frames, age ${age(now - c.createdAt)}, owner ${c.liveness.alive ? "alive" : "dead"} (${c.liveness.why})${mark}\n`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}
