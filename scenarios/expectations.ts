// The expectations of a scenario, checked once its steps ran: output streams, dead letters, how the job ended.

import { compareContains, compareLastPerKey, compareMultiset, compareOrdered } from "./compare.ts";
import { dlqStream } from "./describe.ts";
import type { Expectation, StreamExpectation } from "./format.ts";
import { exitMatches } from "./job-process.ts";
import type { StoredMessage } from "./nats-io.ts";
import { POLL_MS, SETTLE_MS, sleep, type ScenarioState } from "./run-state.ts";

export async function checkExpectation(run: ScenarioState, e: Expectation): Promise<string | undefined> {
  switch (e.kind) {
    case "stream": return checkStream(run, e.body);
    case "dlq": {
      const stream = dlqStream(run.jobName);
      const letters = await settledRead(run, stream, undefined, e.body.count ?? 0, run.expectTimeoutMs);
      const problems: string[] = [];
      if (e.body.count !== undefined && letters.length !== e.body.count) {
        problems.push(`${letters.length} dead letter${letters.length === 1 ? "" : "s"}, expected ${e.body.count}${letters.length ? ` (reasons: ${summarizeReasons(letters)})` : ""}`);
      }
      if (e.body.reasonMatches !== undefined) {
        const patterns = (Array.isArray(e.body.reasonMatches) ? e.body.reasonMatches : [e.body.reasonMatches]).map((p) => new RegExp(p));
        const reasons = letters.map((l) => String((l.value as { reason?: unknown })?.reason ?? ""));
        const unmatched = reasons.filter((r) => !patterns.some((p) => p.test(r)));
        const unused = patterns.filter((p) => !reasons.some((r) => p.test(r)));
        if (unmatched.length) problems.push(`reason ${JSON.stringify(unmatched[0])} matches none of ${patterns.map(String).join(", ")}`);
        if (unused.length) problems.push(`no dead letter's reason matches ${unused.map(String).join(", ")}${reasons.length ? ` (reasons: ${summarizeReasons(letters)})` : ""}`);
      }
      return problems.length ? problems.join("; ") : undefined;
    }
    case "exit":
    case "failure": {
      const proc = run.proc;
      if (!proc) return "no job process was started";
      const exit = await proc.waitExit(run.s.timeoutMs);
      if (!exit) return `the job was still running after ${run.s.timeoutMs} ms`;
      proc.judged = true;
      if (e.kind === "exit") return exitMatches(exit, e.body) ? undefined : `the job ended with ${proc.describeExit()}, expected exit ${e.body}`;
      if (exit.code === 0) return `the job exited 0, expected a failure mentioning ${JSON.stringify(e.body)}`;
      // The reason must be in the one line that says why (the last `weir: ...` line), not just somewhere in the log.
      const line = proc.failureLine();
      if (!line.includes(e.body)) {
        const elsewhere = proc.stderr.includes(e.body) ? " (it appears elsewhere in stderr, not in the failure line)" : "";
        return `the job failed (exit code ${exit.code}) with ${JSON.stringify(line)}, which does not mention ${JSON.stringify(e.body)}${elsewhere}`;
      }
      return undefined;
    }
  }
}

async function checkStream(run: ScenarioState, e: StreamExpectation): Promise<string | undefined> {
  const want = e.count ?? e.records?.length ?? e.contains?.length ?? 0;
  const messages = await settledRead(run, e.stream, e.subject, want, e.timeoutMs ?? run.expectTimeoutMs);
  const where = e.subject ? `${e.stream} (${e.subject})` : e.stream;
  if (messages.length === 0 && (await run.nats.count(e.stream)) === undefined && want > 0) return `stream ${e.stream} does not exist`;
  const values = messages.map((m) => m.value);
  const problems: string[] = [];
  if (e.count !== undefined && values.length !== e.count) problems.push(`${where} has ${values.length} messages, expected ${e.count}`);
  if (e.records !== undefined) {
    const p = e.ordered ? compareOrdered(values, e.records)
      : e.lastPerKey ? compareLastPerKey(values, e.records, e.lastPerKey)
      : compareMultiset(values, e.records);
    if (p) problems.push(p);
  }
  if (e.contains !== undefined) {
    const p = compareContains(values, e.contains);
    if (p) problems.push(p);
  }
  return problems.length ? problems.join("; ") : undefined;
}

/**
 * The stream's messages once it holds at least `want` and its count has not changed for a moment (or
 * the timeout passed): a job still running may be writing the last records.
 */
async function settledRead(run: ScenarioState, stream: string, subject: string | undefined, want: number, timeoutMs: number): Promise<StoredMessage[]> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let stableSince = Date.now();
  for (;;) {
    const n = (await run.nats.count(stream, subject)) ?? 0;
    if (n !== last) { last = n; stableSince = Date.now(); }
    const running = run.running;
    const settled = !running || Date.now() - stableSince >= SETTLE_MS;
    if ((n >= want && settled) || Date.now() > deadline) break;
    if (!running && n < want) break;
    await sleep(POLL_MS);
  }
  return run.nats.read(stream, subject);
}

function summarizeReasons(letters: readonly StoredMessage[]): string {
  const reasons = [...new Set(letters.map((l) => String((l.value as { reason?: unknown })?.reason ?? "?")))];
  return reasons.slice(0, 3).map((r) => JSON.stringify(r.length > 80 ? `${r.slice(0, 77)}...` : r)).join(", ") + (reasons.length > 3 ? ", ..." : "");
}
