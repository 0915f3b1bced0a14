// What the workers of one job must agree on: the job graph (operators, their uids, chains and
// exchanges), the options that decide where state and records go, and the code of the functions its
// operators and key selectors run. A worker started with another job file, other options or another
// version of a function would split keys over other key groups, or run other operators or other code on
// its share of the records; the leader leaves it without subtasks and tells it why
// (actors/worker/leader-side.ts).

import { createHash } from "node:crypto";
import * as t from "io-ts";
import type { JobGraph } from "../graph/job-graph.ts";
import type { ResolvedJobOptions } from "../contracts/job-options.ts";
import { modulesDifference, type JobModules } from "./job-modules.ts";

export const JobIdentityCodec = t.intersection([
  t.type({ graph: t.string, settings: t.record(t.string, t.union([t.string, t.number])) }),
  t.partial({ code: t.string, modules: t.record(t.string, t.string) }),
], "JobIdentity");
export type JobIdentity = t.TypeOf<typeof JobIdentityCodec>;

/**
 * `clock`: "manual" for `weir run --manual-clock` (processing time moves only when the leader moves it).
 * An operator's own parallelism (`{ parallelism }` in its options) is a setting too: a worker whose source
 * ran at another one would read other subjects, and a keyed subtask would wait for barriers from channels
 * the leader's graph does not have (the job stalled, nothing said why). So are a window operator's
 * windows (its assigner's kind and sizes, a count window's size and slide: a worker of 30 s windows beside
 * one of 60 s would emit both).
 */
export function jobIdentity(graph: JobGraph, job: ResolvedJobOptions, clock: "manual" | "system" = "system", modules?: JobModules): JobIdentity {
  const own: Record<string, number | string> = {};
  for (const v of graph.vertices) {
    for (const n of v.nodes) {
      if (n.parallelism !== undefined) own[`parallelism of "${n.uid}"`] = n.parallelism;
      if (n.kind === "operator" && n.spec.stateLayout !== undefined) own[`windows of "${n.uid}"`] = n.spec.stateLayout;
      if (n.kind === "operator" && n.spec.sharedSettings !== undefined) own[`windows of "${n.uid}"`] = n.spec.sharedSettings;
      if (n.kind === "source") settingEntries(n.source.settings, `of source "${n.uid}"`, own);
      if (n.kind === "sink") settingEntries(n.sink.settings, `of sink "${n.uid}"`, own);
    }
  }
  const shape = graph.vertices.map((v) => ({
    uid: v.uid,
    nodes: v.nodes.map((n) => `${n.kind}:${n.uid}`),
    inputs: v.inputs.map((e) => `${graph.vertices[e.fromVertex]?.uid}:${e.partitioning.type}:${e.inputIndex}:${e.tag ?? ""}`),
  }));
  // The operators' functions (user-code.ts) and the key selectors of keyed exchanges, in graph order.
  const code = graph.vertices.map((v) => [
    ...v.nodes.map((n) => (n.kind === "operator" ? n.code ?? "" : "")),
    ...v.inputs.map((e) => (e.partitioning.type === "hash" ? Function.prototype.toString.call(e.partitioning.selector) : "")),
  ]);
  return {
    graph: createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 16),
    code: createHash("sha256").update(JSON.stringify(code)).digest("hex").slice(0, 16),
    ...(modules !== undefined ? { modules } : {}),
    settings: {
      parallelism: job.reactive ? "auto" : job.parallelism,
      maxParallelism: job.maxParallelism,
      stateBackend: job.stateBackend,
      mode: job.mode,
      checkpointIntervalMs: job.checkpointIntervalMs,
      clock,
      ...own,
    },
  };
}

/** Nesting of a connector's settings followed (a hybrid source's parts, their options). */
const MAX_SETTINGS_DEPTH = 4;

const digest = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 12);

/**
 * A connector's settings (SourceDef/SinkDef.settings) as entries `<name> of source "<uid>"`: strings and
 * numbers as given, functions by a digest of their text, lists (an array source's items) by a digest of
 * their JSON, objects entry by entry, anything else (a codec, a class instance) by its name.
 */
function settingEntries(value: unknown, at: string, into: Record<string, string | number>, name = "", depth = 0): void {
  const key = name === "" ? `settings ${at}` : `${name} ${at}`;
  if (value === undefined) return;
  if (typeof value === "string" || typeof value === "number") into[key] = value;
  else if (typeof value === "function") into[key] = `function ${digest(Function.prototype.toString.call(value))}`;
  else if (value === null || typeof value !== "object") into[key] = String(value);
  else if (Array.isArray(value)) into[key] = `list ${digest(jsonOrKind(value))}`;
  else {
    const proto = Object.getPrototypeOf(value) as unknown;
    if ((proto !== Object.prototype && proto !== null) || depth >= MAX_SETTINGS_DEPTH) {
      const named = (value as { name?: unknown }).name;
      into[key] = typeof named === "string" ? named : "object";
      return;
    }
    for (const [k, v] of Object.entries(value)) settingEntries(v, at, into, name === "" ? k : `${name}.${k}`, depth + 1);
  }
}

const isConnectorSetting = (key: string): boolean => / of (source|sink) "[^"]*"$/.test(key);

function jsonOrKind(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "undefined";
  } catch {
    return "unserializable";
  }
}

/** How `theirs` differs from `mine`, in words (undefined: the same job). */
export function identityDifference(mine: JobIdentity, theirs: JobIdentity): string | undefined {
  // Both sides' keys: an operator's own parallelism is set on one side only when the job files differ.
  const show = (v: string | number | undefined) => (v === undefined ? "not set" : JSON.stringify(v));
  // A worker of a version that sends no connector settings is not judged by them (as for code, below).
  const bothSendConnectors = Object.keys(mine.settings).some(isConnectorSetting) && Object.keys(theirs.settings).some(isConnectorSetting);
  const judged = (k: string) => bothSendConnectors || !isConnectorSetting(k);
  const settings = [...new Set([...Object.keys(mine.settings), ...Object.keys(theirs.settings)])]
    .filter((k) => judged(k) && mine.settings[k] !== theirs.settings[k])
    .map((k) => `${k} ${show(theirs.settings[k])} (the leader's: ${show(mine.settings[k])})`);
  // The job's modules name the file that differs; they are not known for a program's worker (job-modules.ts).
  const modules = mine.modules !== undefined && theirs.modules !== undefined ? modulesDifference(mine.modules, theirs.modules) : undefined;
  const graph = mine.graph !== theirs.graph
    ? ["another job graph (other operators, uids, chains or exchanges: another job file?)"]
    // Told only for the same graph (another graph has other code anyway); a worker of a version that sends no code is not judged by it.
    : modules !== undefined
      ? [`other code in ${modules} (another version of the job?)`]
      : mine.code !== undefined && theirs.code !== undefined && mine.code !== theirs.code
        ? ["other code in its operators' functions or key selectors (another version of the job file?)"]
        : [];
  const parts = [...graph, ...settings];
  return parts.length > 0 ? parts.join(", ") : undefined;
}
