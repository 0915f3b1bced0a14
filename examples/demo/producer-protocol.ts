// What the demo and its producer process (producer-process.ts) say to each other over the IPC channel.

import type { NatsSettings } from "../../runtime/nats/connection-settings.ts";

/** demo → producer */
export type ToProducer =
  | { readonly type: "start"; readonly settings: NatsSettings; readonly ratePerSec: number }
  | { readonly type: "stop" };

/** What the producer has done so far; `elapsedMs` runs from its first publish. */
export interface ProducerReport {
  readonly produced: number;
  readonly malformed: number;
  readonly failed: number;
  readonly elapsedMs: number;
  /** CPU time the producer process used so far (user + system). */
  readonly cpuMs: number;
  readonly firstError?: string;
}

/** producer → demo */
export type FromProducer =
  | { readonly type: "listening" }
  | { readonly type: "started" }
  | { readonly type: "progress"; readonly report: ProducerReport }
  | { readonly type: "done"; readonly report: ProducerReport }
  | { readonly type: "error"; readonly message: string };
