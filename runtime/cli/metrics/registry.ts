// /metrics: weir's metric families (families.ts) and prom-client's process and Node.js metrics in one
// prom-client registry. A scrape takes one snapshot of the job views and renders every family from it.
// Counters never go down within a process: a restarted subtask starts its figures at 0 again, so each
// counter series keeps what earlier incarnations had counted as an offset (one number per series). In
// `weir run` the runtime tells the final figures of each incarnation it replaces (`retire`), so nothing
// counted between the last scrape and a restart is lost; a source without that (`weir dashboard`, reading
// statuses over NATS) falls back to taking a drop as a restart and what it scraped last as the offset.
// A histogram (the leader's checkpoint durations, whose coordinator is new each time a worker leads again)
// restarts as a whole: when its count drops, or another worker reports it, every series of it (each bucket,
// the sum, the count) adds what it showed last, so its buckets stay cumulative and agree with its count.

import { Registry, collectDefaultMetrics } from "prom-client";
import type { JobView, JobViewSource } from "../http/job-view.ts";
import type { RouteHandler } from "../http/server.ts";
import { FAMILIES, type Family, type Sample } from "./families.ts";
import type { SubtaskStatus } from "../../../actors/subtask/status.ts";

/** A counter series' last figure, what earlier incarnations counted, and the worker that reported it last. */
interface SeriesCount { last: number; offset: number; worker: string | undefined }

/** One histogram of one job: its series' last figures and offsets (by metric name and `le`), its last count and worker. */
interface HistogramCount { readonly last: Map<string, number>; readonly offset: Map<string, number>; count: number; worker: string | undefined }

export class MetricsRegistry {
  readonly registry = new Registry();
  private snapshot: readonly JobView[] = [];
  private source: JobViewSource | undefined;
  private readonly counters = new Map<string, SeriesCount>();
  private readonly histograms = new Map<string, HistogramCount>();
  /** Told each replaced incarnation's figures (`retire`): a drop is then no sign of a restart. */
  private retiring = false;
  private scraping: Promise<unknown> = Promise.resolve();

  constructor(private readonly families: readonly Family[] = FAMILIES) {
    for (const f of families) {
      this.registry.registerMetric({
        name: f.name, help: f.help, type: f.type, aggregator: "sum",
        get: () => ({ name: f.name, help: f.help, type: f.type, aggregator: "sum", values: this.values(f) }),
      } as unknown as Parameters<Registry["registerMetric"]>[0]);
    }
  }

  /** Starts serving the job's figures; `labels` go on the process and Node.js metrics too. */
  attach(source: JobViewSource, labels: Readonly<Record<string, string>>): void {
    this.source = source;
    // Prefixed as every weir metric is (API.md: names prefixed weir_): weir_process_cpu_user_seconds_total.
    collectDefaultMetrics({ register: this.registry, prefix: "weir_", labels: { ...labels } });
    // prom-client's nodejs_active_{handles,requests,resources}_total are gauges; Prometheus (and API.md)
    // keep `_total` for counters. Their per-type gauges without the suffix stay.
    for (const m of this.registry.getMetricsAsArray()) {
      if (m.name.endsWith("_total") && (m as unknown as { type?: string }).type === "gauge") this.registry.removeSingleMetric(m.name);
    }
  }

  /** The exposition text; scrapes run one at a time (each reads its own snapshot). */
  render(): Promise<string> {
    const next = this.scraping.then(async () => {
      this.snapshot = this.source ? await this.source.views() : [];
      return this.registry.metrics();
    });
    this.scraping = next.catch(() => {});
    return next;
  }

  route(): RouteHandler {
    return async () => ({ contentType: this.registry.contentType, body: await this.render() });
  }

  /**
   * A restart replaced these subtasks of `job` (in this process): their final figures become the offsets of
   * their counter series, and the new incarnations count on from there. The worker label is this process's.
   */
  retire(job: string, ended: readonly SubtaskStatus[]): void {
    this.retiring = true;
    const view: JobView = { job, worker: "", leader: false, at: "", status: undefined as never, localSubtasks: ended };
    for (const f of this.families) {
      if (f.type !== "counter") continue;
      for (const s of f.samples([view])) {
        const c = this.counter(this.keyOf(f.name, s));
        c.offset += s.value;
        c.last = 0;
      }
    }
  }

  private values(f: Family): Sample[] {
    const samples = f.samples(this.snapshot);
    if (f.type === "histogram") return this.continuedHistograms(f.name, samples);
    if (f.type !== "counter") return samples;
    return samples.map((s) => ({ ...s, value: this.monotonic(f.name, s) }));
  }

  /** Each histogram (one per set of labels but `le` and the worker) continued from what it showed before it restarted. */
  private continuedHistograms(name: string, samples: readonly Sample[]): Sample[] {
    const byHistogram = new Map<string, Sample[]>();
    for (const s of samples) {
      const { le: _le, ...labels } = s.labels;
      const key = this.keyOf(name, { value: 0, labels });
      let group = byHistogram.get(key);
      if (group === undefined) byHistogram.set(key, (group = []));
      group.push(s);
    }
    const out: Sample[] = [];
    for (const [key, group] of byHistogram) {
      let h = this.histograms.get(key);
      if (h === undefined) this.histograms.set(key, (h = { last: new Map(), offset: new Map(), count: 0, worker: undefined }));
      const count = group.find((s) => s.metricName === `${name}_count`)?.value ?? 0;
      const worker = group[0]!.labels.worker;
      if (count < h.count || (h.worker !== undefined && worker !== h.worker)) {
        for (const [series, v] of h.last) h.offset.set(series, (h.offset.get(series) ?? 0) + v);
      }
      h.count = count;
      h.worker = worker;
      for (const s of group) {
        const series = `${s.metricName ?? name}${s.labels.le ?? ""}`;
        h.last.set(series, s.value);
        out.push({ ...s, value: s.value + (h.offset.get(series) ?? 0) });
      }
    }
    return out;
  }

  private monotonic(name: string, s: Sample): number {
    const c = this.counter(this.keyOf(name, s));
    // A series now reported by another worker (the job started again, or the subtask moved) counts from 0
    // there: what the last one had counted is kept even when the new figure is already higher.
    // retire() is told subtasks only: a job-wide series (the leader's checkpoint counts, whose coordinator
    // is new each time this worker leads again) still takes a drop as a restart.
    const worker = s.labels.worker;
    const told = this.retiring && s.labels.subtask !== undefined;
    if (!told && (s.value < c.last || (c.worker !== undefined && worker !== c.worker))) c.offset += c.last;
    c.last = s.value;
    c.worker = worker;
    return c.offset + s.value;
  }

  /** One series of a process: its labels but the worker (one per process; retire() is told none). */
  private keyOf(name: string, s: Sample): string {
    const { worker: _worker, ...labels } = s.labels;
    return `${name}${JSON.stringify(labels)}`;
  }

  private counter(key: string): SeriesCount {
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = { last: 0, offset: 0, worker: undefined }));
    return c;
  }
}
