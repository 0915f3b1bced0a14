// The checkpoints a dashboard lists: the job status carries only the last completed one, so each
// snapshot's last completed checkpoint is kept here (a bounded list per job), seeded once per job from
// its checkpoint bucket when a NATS connection can read it (`weir checkpoints` reads the same).

import type { NatsConnection } from "@nats-io/transport-node";
import type { CheckpointSummary } from "../../checkpoint/metadata.ts";
import { summarize } from "../../checkpoint/metadata.ts";
import { CheckpointStore } from "../../checkpoint/store.ts";
import { JobNames } from "../../core/names.ts";
import type { JobView } from "../http/job-view.ts";

/** Checkpoints kept per job (a daemon checkpoints for months; a page shows the recent ones). */
export const HISTORY_KEPT = 50;

export type HistorySeed = (job: string) => Promise<readonly CheckpointSummary[]>;

export class CheckpointHistory {
  private readonly jobs = new Map<string, CheckpointSummary[]>();
  private readonly seeding = new Map<string, Promise<void>>();

  constructor(private readonly seed?: HistorySeed) {}

  /** Adds the views' last completed checkpoints; the first time a job is seen, its stored ones first. */
  async observe(views: readonly JobView[]): Promise<void> {
    for (const v of views) {
      if (!v.leader) continue;
      if (this.seed && !this.seeding.has(v.job)) this.seeding.set(v.job, this.seed(v.job).then((rows) => { for (const r of rows) this.add(v.job, r); }, () => {}));
      await this.seeding.get(v.job);
      const last = v.status.checkpoints?.lastCompleted;
      if (last) this.add(v.job, last);
    }
  }

  /** Newest first. */
  of(job: string): readonly CheckpointSummary[] {
    return [...(this.jobs.get(job) ?? [])].reverse();
  }

  private add(job: string, c: CheckpointSummary): void {
    const list = this.jobs.get(job) ?? [];
    if (list.some((x) => x.id === c.id)) return;
    list.push(c);
    list.sort((a, b) => a.id - b.id);
    if (list.length > HISTORY_KEPT) list.splice(0, list.length - HISTORY_KEPT);
    this.jobs.set(job, list);
  }
}

/** The completed checkpoints in a job's checkpoint bucket (the last HISTORY_KEPT). */
export function storedCheckpoints(nc: () => Promise<NatsConnection>): HistorySeed {
  return async (job) => {
    const store = await CheckpointStore.openExisting(await nc(), new JobNames(job));
    const rows: CheckpointSummary[] = [];
    if (!store) return rows;
    for (const id of (await store.list()).slice(-HISTORY_KEPT)) {
      const m = await store.read(id);
      if (m) rows.push(summarize(m));
    }
    return rows;
  };
}
