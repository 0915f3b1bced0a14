// Brings an existing stream (or KV bucket's stream) to the replica count the job asks for. A stream made
// by an earlier run with another `natsReplicas` is updated in place (nats-server moves it to more or
// fewer peers, keeping its messages) and the change is reported in one line, so that raising
// `natsReplicas` protects the state an earlier run already wrote.

import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";

export interface WantedStream {
  readonly replicas: number;
  /**
   * Whether followers may answer direct gets. Off on a replicated stream whose reads decide something:
   * a follower answers before it caught up, so a read could miss an acknowledged write.
   */
  readonly allowDirect?: boolean;
}

/** Updates `info`'s stream when its replicas (or direct gets) differ from `want`; returns the line said, if any. */
export async function reconcileStream(jsm: JetStreamManager, info: StreamInfo, want: WantedStream, say: (line: string) => void = (l) => process.stderr.write(`weir: ${l}\n`)): Promise<string | undefined> {
  const c = info.config;
  const replicas = c.num_replicas || 1;
  const direct = c.allow_direct === true;
  if (replicas === want.replicas && (want.allowDirect === undefined || direct === want.allowDirect)) return undefined;
  await jsm.streams.update(c.name, { ...c, num_replicas: want.replicas, ...(want.allowDirect === undefined ? {} : { allow_direct: want.allowDirect }) });
  const changes = [
    ...(replicas !== want.replicas ? [`replicas ${replicas} -> ${want.replicas}`] : []),
    ...(want.allowDirect !== undefined && direct !== want.allowDirect ? [`direct gets ${want.allowDirect ? "on" : "off"}`] : []),
  ];
  const line = `stream ${c.name} existed with other settings; updated it (${changes.join(", ")}) to match natsReplicas`;
  say(line);
  return line;
}
