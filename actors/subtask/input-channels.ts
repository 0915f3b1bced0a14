// A subtask's input channels: for each in edge, one per producer subtask (forward: the same index only),
// numbered within their input so the watermark and attributes valves can combine them.

import type { JobGraph, JobVertex } from "../../runtime/graph/job-graph.ts";
import type { JobNames } from "../../runtime/core/names.ts";
import type { InputChannelSpec } from "../../runtime/transport/input-gate.ts";

export function inputChannels(graph: JobGraph, vertex: JobVertex, index: number, names: JobNames, attempt: string): { channels: InputChannelSpec[]; perInput: number[] } {
  const channels: InputChannelSpec[] = [];
  const perInput: number[] = [];
  for (const edge of vertex.inputs) {
    const source = graph.vertices[edge.fromVertex]!;
    const producers = edge.partitioning.type === "forward" ? [index] : Array.from({ length: source.parallelism }, (_, i) => i);
    for (const from of producers) {
      perInput[edge.inputIndex] = (perInput[edge.inputIndex] ?? 0) + 1;
      channels.push({
        subject: names.channel(attempt, edge.id, from, index),
        creditSubject: names.credits(attempt, edge.fromVertex, from),
        creditTag: `${edge.id}.${index}`,
        inputIndex: edge.inputIndex,
        indexInInput: perInput[edge.inputIndex]! - 1,
        description: `${source.name}#${from}`,
      });
    }
  }
  const inputCount = Math.max(1, perInput.length);
  for (let i = 0; i < inputCount; i++) perInput[i] ??= 0;
  return { channels, perInput };
}
