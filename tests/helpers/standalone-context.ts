// A connector context outside a running job: for tests and tools that drive a reader or writer directly
// (the runtime builds the real one per subtask).

import type { NatsConnection } from "@nats-io/transport-node";
import type { ConnectorContext } from "../../runtime/contracts/connectors.ts";
import { DeadLetterPublisher } from "../../actors/subtask/dead-letters.ts";
import { JobNames } from "../../runtime/core/names.ts";

export interface StandaloneOptions {
  readonly nc: NatsConnection;
  readonly job?: string;
  readonly operatorUid?: string;
  readonly subtaskIndex?: number;
  readonly parallelism?: number;
  /** The run's attempt, as a job's subtasks have (subjects its subtasks share carry it). */
  readonly attempt?: string;
  readonly restoredState?: any;
  /** For sink writers: whether the job takes checkpoints. */
  readonly checkpointing?: boolean;
  readonly log?: (message: string) => void;
  /** Share one publisher between several contexts of the same job. */
  readonly deadLetters?: DeadLetterPublisher;
  /** For sink writers: what failing the subtask does (a job fails it over). */
  readonly fail?: (error: unknown) => void;
}

/** Usable as a SourceContext and as a SinkContext (`restoredState` is whatever the test passes). */
export type StandaloneContext = ConnectorContext & { readonly restoredState: any; readonly checkpointing: boolean; readonly publisher: DeadLetterPublisher };

export function standaloneContext(options: StandaloneOptions): StandaloneContext {
  const names = new JobNames(options.job ?? "t");
  const log = options.log ?? (() => {});
  const publisher = options.deadLetters ?? new DeadLetterPublisher(options.nc, names, log);
  return {
    jobName: names.job,
    names,
    operatorUid: options.operatorUid ?? "op",
    operatorName: options.operatorUid ?? "op",
    subtaskIndex: options.subtaskIndex ?? 0,
    parallelism: options.parallelism ?? 1,
    ...(options.attempt !== undefined ? { attempt: options.attempt } : {}),
    nc: options.nc,
    deadLetters: publisher.forSubtask(""),
    log,
    restoredState: options.restoredState,
    checkpointing: options.checkpointing ?? false,
    publisher,
    ...(options.fail ? { fail: options.fail } : {}),
  };
}
