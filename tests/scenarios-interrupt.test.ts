// `weir scenario` interrupted (SIGINT/SIGTERM) while a scenario's expectations are checked: the
// scenario fails with one line saying so, and the expectations after it are not checked.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runScenario } from "../scenarios/runner.ts";

const examples = resolve(new URL("../examples/scenarios", import.meta.url).pathname);

test("interrupted during the expectations: one failure, 'interrupted (SIGINT)', and nothing after it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-scn-int-"));
  try {
    const file = join(dir, "int.scenario.yaml");
    writeFileSync(file, [
      `job: ${examples}/wordcount.ts`,
      "streams: [{ name: WORDS, subjects: ['words.>'] }]",
      "steps: []",
      "expect:",
      "  - stream: COUNTS",
      "    count: 3",
      "  - stream: COUNTS",
      "    count: 5",
      "  - exit: 0",
    ].join("\n"));
    const abort = new AbortController();
    // Aborted once the server is up; with no steps, the expectations are what the interrupt meets.
    const r = await runScenario(file, { signal: abort.signal, log: (l) => { if (l.includes("nats-server at")) abort.abort("SIGINT"); } });
    assert.is(r.outcome, "failed");
    assert.equal(r.failures, ["expect[0] (stream COUNTS): interrupted (SIGINT)"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
