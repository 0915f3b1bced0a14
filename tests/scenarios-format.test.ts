// The scenario file format (no server): one-line errors naming the file and the field path, templates,
// record comparisons and the pass/fail table.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeirError } from "../runtime/core/errors.ts";
import { loadScenario, parseScenario } from "../scenarios/format.ts";
import { TemplateFiller, templateProblem } from "../scenarios/template.ts";
import { compareContains, compareLastPerKey, compareMultiset, compareOrdered } from "../scenarios/compare.ts";
import { formatTable } from "../scenarios/cli.ts";
import { findScenarioFiles } from "../scenarios/runner.ts";

const FILE = "scenarios/x.scenario.yaml";

function errorOf(text: string, file = FILE): string {
  try {
    parseScenario(text, file);
  } catch (e) {
    assert.instance(e, WeirError);
    const m = (e as Error).message;
    assert.not.ok(m.includes("\n"), `one line: ${m}`);
    return m;
  }
  throw new Error("expected the scenario to be rejected");
}

const f = suite("scenario format");

f("a wrong type names the file and the field path", () => {
  const text = [
    "job: job.ts",
    "steps:",
    "  - publish: { subject: words.a, data: x }",
    "  - start: {}",
    "  - publish: { subject: 3, data: x }",
  ].join("\n");
  assert.is(errorOf(text), "scenarios/x.scenario.yaml: steps[2].publish.subject: expected non-empty string, got 3");
});

f("loadScenario reports a file's problems with its path", () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-scn-"));
  try {
    const file = join(dir, "bad.scenario.yaml");
    writeFileSync(file, "job: j.ts\nsteps:\n  - wait: { output: { stream: X, count: -1 } }\n");
    assert.throws(() => loadScenario(file), (e: Error) => e.message === `${file}: steps[0].wait.output.count: expected positive integer, got -1`);
    assert.throws(() => loadScenario(join(dir, "missing.scenario.yaml")), (e: Error) => e.message.endsWith("missing.scenario.yaml: file not found"));
    // A job path that leads nowhere is a problem of the file, found without running it.
    const nojob = join(dir, "nojob.scenario.yaml");
    writeFileSync(nojob, "job: ./nowhere.ts\nsteps: []\n");
    assert.throws(() => loadScenario(nojob), (e: Error) => e.message === `${nojob}: job: job file not found: ${join(dir, "nowhere.ts")}`);
    // A folder is there, but is no job file ("job file not found" sent the user looking for a missing path).
    writeFileSync(nojob, "job: .\nsteps: []\n");
    assert.throws(() => loadScenario(nojob), (e: Error) => e.message === `${nojob}: job: ${dir} is a directory: give the job's .ts file`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

f("unknown steps, fields and options are errors, not ignored", () => {
  assert.match(errorOf("job: j.ts\nsteps:\n  - pubish: { subject: a, data: x }"), /^scenarios\/x\.scenario\.yaml: steps\[0\]\.pubish: expected one of publish, start, wait, sleep, kill, restart, stop/);
  assert.match(errorOf("job: j.ts\nsteps:\n  - wait: { outptu: { stream: X, count: 1 } }"), /steps\[0\]\.wait\.outptu: expected one of output, watermark, state, checkpoint, exit, dlq, recordsIn/);
  assert.match(errorOf("job: j.ts\noptions: { paralelism: 2 }\nsteps: []"), /options\.paralelism: expected no field "paralelism" \(known: parallelism, stateBackend/);
  assert.match(errorOf("job: j.ts\nsteps: []\nexpect:\n  - stream: X\n    record: []"), /expect\[0\]\.record: expected no field "record"/);
  assert.match(errorOf("job: j.ts\nsteps: []\nexpect:\n  - strem: X"), /expect\[0\]\.strem: expected one of stream, dlq, exit, failure/);
  assert.match(errorOf("job: j.ts\nsteps:\n  - kill: proc"), /steps\[0\]\.kill: expected "process" or an object/);
  assert.match(errorOf("job: j.ts\nsteps:\n  - wait: { exit: -1 }"), /steps\[0\]\.wait\.exit: expected an exit code/);
  assert.match(errorOf("steps: []"), /^scenarios\/x\.scenario\.yaml: job: expected non-empty string, got nothing$/);
});

f("cross-field rules and templates are checked when loading", () => {
  assert.match(errorOf("job: j.ts\nsteps:\n  - publish: { subject: a, data: x, json: 1 }"), /steps\[0\]\.publish: expected exactly one of data, json, lines \(got data and json\)/);
  assert.match(errorOf("job: j.ts\nsteps:\n  - publish: { subject: a }"), /steps\[0\]\.publish: expected exactly one of data, json, lines,/);
  assert.match(errorOf('job: j.ts\nsteps:\n  - publish: { subject: "a.${j}", data: x }'), /steps\[0\]\.publish\.subject: expected a valid template \(\$\{j\}: unknown variable j.*got "a\.\$\{j\}"/);
  assert.match(errorOf('job: j.ts\nsteps:\n  - publish: { subject: a, json: { v: "${k}" } }'), /steps\[0\]\.publish\.json: expected a valid template \(\$\{k\}: unknown variable k/);
  assert.match(errorOf("job: j.ts\noptions: { restore: no-such-checkpoint }\nsteps: []"), /options\.restore: expected \("latest" \| "none" \| checkpoint id\), got "no-such-checkpoint"/);
  // The server drops a message to such a subject: the step failed as "jetstream is not enabled", or not at all.
  assert.is(errorOf('job: j.ts\nsteps:\n  - publish: { subject: "orders..${i}", data: x }'), `${FILE}: steps[0].publish.subject: expected a subject to publish to (subjects are dot-separated non-empty tokens without spaces), got "orders..\${i}"`);
  assert.match(errorOf("job: j.ts\nsteps:\n  - publish: { subject: orders.>, data: x }"), /steps\[0\]\.publish\.subject: expected a subject to publish to \(wildcards cannot be published to\), got "orders\.>"$/);
  parseScenario('job: j.ts\nsteps:\n  - publish: { subject: "orders.${i % 2}.${floor(i / 2)}", data: x }', FILE);
  assert.match(errorOf('job: j.ts\nsteps:\n  - publish: { subject: a, data: "x${i" }'), /steps\[0\]\.publish\.data: expected a valid template \(a \$\{ without its closing \}\)/);
  assert.match(errorOf("job: j.ts\nsteps: []\nexpect:\n  - stream: X\n    ordered: true\n    count: 1"), /expect\[0\]: expected records \(ordered and lastPerKey compare records\)/);
  assert.match(errorOf("job: j.ts\nsteps: []\nexpect:\n  - dlq: { reasonMatches: \"(\" }"), /expect\[0\]\.dlq\.reasonMatches: expected a valid regular expression/);
  // Two timeouts for one wait: the inner one held, silently.
  assert.is(errorOf("job: j.ts\nsteps:\n  - wait: { recordsIn: 5, timeoutMs: 100 }\n    timeoutMs: 9000"), `${FILE}: steps[0].timeoutMs: expected a timeout given once (inside wait or beside it, not both), got 9000`);
  assert.equal(parseScenario("job: j.ts\nsteps:\n  - wait: { recordsIn: 5 }\n    timeoutMs: 9000", FILE).steps[0], { kind: "wait", body: { kind: "recordsIn", body: 5 }, timeoutMs: 9000 } as never);
});

f("manual clock: options.manualClock, advanceClock steps and processed waits decode; bad values name the field", () => {
  const ok = parseScenario("job: j.ts\noptions: { manualClock: 0 }\nsteps:\n  - wait: { processed: { operator: hourly, count: 4 } }\n  - advanceClock: 3600000\n", FILE);
  assert.is(ok.options?.manualClock, 0);
  assert.equal(ok.steps.map((st) => st.kind), ["wait", "advanceClock"]);
  assert.equal(ok.steps[1], { kind: "advanceClock", body: 3600000 });
  assert.is(errorOf("job: j.ts\nsteps:\n  - advanceClock: -1"), `${FILE}: steps[0].advanceClock: expected non-negative integer, got -1`);
  assert.is(errorOf("job: j.ts\noptions: { manualClock: soon }\nsteps: []"), `${FILE}: options.manualClock: expected non-negative integer, got "soon"`);
  assert.match(errorOf("job: j.ts\nsteps:\n  - wait: { processed: { operator: hourly } }"), /steps\[0\]\.wait\.processed\.count: /);
});

f("invalid YAML is one line with its position", () => {
  assert.match(errorOf("job: j.ts\nsteps: [ {publish: }"), /^scenarios\/x\.scenario\.yaml: invalid YAML: .* at line 2, column \d+$/);
  assert.is(errorOf(""), "scenarios/x.scenario.yaml: expected a mapping with job, steps and expect, got an empty file");
  // Two scenarios in one file: the YAML library's message told the user to call YAML.parseAllDocuments().
  assert.is(errorOf("job: a.ts\nsteps: []\n---\njob: b.ts\nsteps: []\n"), `${FILE}: invalid YAML: a second document (---) at line 3: a scenario file holds one scenario`);
});

f("a valid file decodes every step and expectation, with defaults", () => {
  const s = parseScenario([
    "job: ../examples/j.ts",
    "steps:",
    "  - start:",
    "  - kill: process",
    "  - sleep: 100",
    "  - wait: { checkpoint: 1 }",
    "  - wait: { output: { stream: C, count: 2 }, timeoutMs: 100 }",
    "  - kill: { subtask: 'count#0' }",
    "  - restart: { options: { parallelism: 3 } }",
    "  - stop: { via: control, savepoint: true }",
    "expect:",
    "  - stream: C",
    "    lastPerKey: word",
    "    records: [{ word: a }]",
    "  - exit: 0",
    "  - failure: boom",
    "  - dlq: { count: 1, reasonMatches: [x, y] }",
  ].join("\n"), "/tmp/s/x.scenario.yaml");
  assert.is(s.name, "x");
  assert.is(s.jobPath, "/tmp/examples/j.ts");
  assert.is(s.timeoutMs, 10_000);
  assert.equal(s.steps.map((x) => x.kind), ["start", "kill", "sleep", "wait", "wait", "kill", "restart", "stop"]);
  assert.equal(s.steps[0], { kind: "start", body: {} });
  assert.equal(s.steps[4], { kind: "wait", body: { kind: "output", body: { stream: "C", count: 2 }, timeoutMs: 100 } });
  assert.equal(s.expect.map((e) => e.kind), ["stream", "exit", "failure", "dlq"]);
});

f("worker steps decode; a bad or unknown field is an error naming it", () => {
  const s = parseScenario([
    "job: j.ts",
    "steps:",
    "  - start: { worker: b, options: { parallelism: 2 } }",
    "  - kill: { worker: main }",
    "  - pause: { worker: b }",
    "  - resume: { worker: b }",
    "  - restart: { worker: main }",
    "  - wait: { workers: 2 }",
    "  - stop: { worker: b, exit: any }",
    "  - kill: process",
    "  - kill: { subtask: 'count#0' }",
  ].join("\n"), FILE);
  assert.equal(s.steps.slice(0, 7), [
    { kind: "start", body: { worker: "b", options: { parallelism: 2 } } },
    { kind: "kill", body: { worker: "main" } },
    { kind: "pause", body: { worker: "b" } },
    { kind: "resume", body: { worker: "b" } },
    { kind: "restart", body: { worker: "main" } },
    { kind: "wait", body: { kind: "workers", body: 2 } },
    { kind: "stop", body: { worker: "b", exit: "any" } },
  ]);
  assert.equal(s.steps.slice(7).map((x) => x.body), ["process", { subtask: "count#0" }]);
  const step = (yaml: string) => errorOf(`job: j.ts\nsteps:\n  - ${yaml}`);
  assert.is(step("pause: { worker: b, signal: STOP }"), `${FILE}: steps[0].pause.signal: expected no field "signal" (known: worker), got "STOP"`);
  assert.is(step("pause: {}"), `${FILE}: steps[0].pause.worker: expected non-empty string, got nothing`);
  assert.is(step("resume: b"), `${FILE}: steps[0].resume: expected an object (resume), got "b"`);
  assert.is(step("start: { workr: b }"), `${FILE}: steps[0].start.workr: expected no field "workr" (known: options, worker), got "b"`);
  assert.is(step("kill: { worker: b, pid: 3 }"), `${FILE}: steps[0].kill.pid: expected no field "pid" (known: subtask, worker), got 3`);
  assert.is(step("kill: { worker: b, subtask: 'count#0' }"), `${FILE}: steps[0].kill: expected exactly one of subtask, worker, got {"worker":"b","subtask":"count#0"}`);
  assert.match(step("kill: {}"), /steps\[0\]\.kill: expected exactly one of subtask, worker, got \{\}$/);
  assert.is(step("kill: { worker: '' }"), `${FILE}: steps[0].kill.worker: expected non-empty string, got ""`);
  assert.is(step("restart: { worker: 3 }"), `${FILE}: steps[0].restart.worker: expected non-empty string, got 3`);
  assert.match(step("stop: { worker: b, via: control }"), /steps\[0\]\.stop: expected no via: control or savepoint beside worker \(a named worker leaves on SIGTERM/);
  assert.is(step("wait: { workers: 0 }"), `${FILE}: steps[0].wait.workers: expected positive integer, got 0`);
  assert.match(step("wait: { worker: 2 }"), /steps\[0\]\.wait\.worker: expected one of output, watermark, state, checkpoint, exit, dlq, recordsIn, workers/);
  assert.match(step("suspend: { worker: b }"), /steps\[0\]\.suspend: expected one of publish, start, wait, sleep, kill, restart, stop, pause, resume/);
  assert.is(step("wait: { state: { operator: count, is: runing } }"), `${FILE}: steps[0].wait.state.is: expected subtask state (one of created, restoring, running, finishing, finished, failed, cancelled, running.streaming, running.backlog, running.sorting, finishing.endingInput, finishing.draining, finishing.awaitingFinalCheckpoint, finishing.closing, optionally +aligning or +snapshotting), got "runing"`);
  assert.match(step("sleep: 1\n    name: ''"), /steps\[0\]\.name: expected non-empty string, got ""/);
  assert.match(errorOf("job: j.ts\nstreams: [{ name: S, subjects: [] }]\nsteps: []"), /streams\[0\]\.subjects: expected non-empty list of subjects, got \[\]/);
  // A misspelt state below a right one was accepted, then waited for until the timeout.
  assert.match(step("wait: { state: { is: running.streamng } }"), /steps\[0\]\.wait\.state\.is: expected subtask state .*got "running\.streamng"$/);
  for (const ok of ["running", "running.streaming", "running.backlog+snapshotting", "finishing.awaitingFinalCheckpoint", "finished"]) {
    parseScenario(`job: j.ts\nsteps:\n  - wait: { state: { is: ${ok} } }`, FILE);
  }
});

f("templates: variables, arithmetic, numbers from whole-string templates", () => {
  const vars = { i: 7, n: 10, line: 2, now: 1000, start: 500 };
  const templates = new TemplateFiller();
  assert.is(templates.fillString("user-${i % 3}.${line}", vars), "user-1.2");
  assert.is(templates.fillString("user-${i % 3}.${line}", { ...vars, i: 8 }), "user-2.2", "a parsed expression is evaluated again with new variables");
  assert.equal(templates.fillJson({ ts: "${start + 100 * i}", k: "k${floor(i / 2)}", nested: ["${-i}", "x"] }, vars), { ts: 1200, k: "k3", nested: [-7, "x"] });
  assert.is(templates.fillString("no templates", vars), "no templates");
  assert.match(templateProblem("${i +}") ?? "", /unexpected end/);
  assert.match(templateProblem("${eval(1)}") ?? "", /unknown function eval/);
  assert.is(templateProblem("${max(i, 3) * (n - 1)}"), undefined);
  // A value that is no finite number fails, naming the expression and i, rather than publishing null or NaN.
  assert.throws(() => templates.fillJson({ v: "${1 / (i - 7)}" }, vars), /template \$\{1 \/ \(i - 7\)\} gives Infinity for i = 7/);
  assert.throws(() => templates.fillString("v${floor()}", vars), /template \$\{floor\(\)\} gives NaN/);
});

f("record comparisons: multiset, ordered, contains, lastPerKey", () => {
  assert.is(compareMultiset([{ a: 1, b: 2 }, { a: 1, b: 2 }, "x"], ["x", { b: 2, a: 1 }, { b: 2, a: 1 }]), undefined);
  assert.match(compareMultiset([{ a: 1 }], [{ a: 1 }, { a: 1 }]) ?? "", /got 1 records, expected 2; missing 1: \{"a":1\}/);
  assert.match(compareMultiset([{ a: 2 }], [{ a: 1 }]) ?? "", /missing 1: \{"a":1\}; unexpected 1: \{"a":2\}/);
  assert.is(compareOrdered([1, 2, 3], [1, 2, 3]), undefined);
  assert.match(compareOrdered([1, 3, 2], [1, 2, 3]) ?? "", /record 1 differs: got 3, expected 2/);
  assert.match(compareOrdered([1, 2], [1, 2, 3]) ?? "", /first missing \(record 2\): 3/);
  assert.is(compareContains([1, 2, 3], [3, 1]), undefined);
  assert.match(compareContains([1, 2], [2, 2]) ?? "", /missing 1: 2/);
  const out = [{ w: "a", n: 1 }, { w: "b", n: 1 }, { w: "a", n: 2 }];
  assert.is(compareLastPerKey(out, [{ w: "a", n: 2 }, { w: "b", n: 1 }], "w"), undefined);
  assert.match(compareLastPerKey(out, [{ w: "a", n: 3 }, { w: "b", n: 1 }], "w") ?? "", /differs for 1 key\(s\): "a": got \{"n":2,"w":"a"\}, expected \{"n":3,"w":"a"\}/);
  assert.match(compareLastPerKey(out, [{ w: "a", n: 2 }], "w") ?? "", /unexpected key\(s\) "b"/);
  assert.match(compareLastPerKey(out, [{ w: "a", n: 2 }, { w: "b", n: 1 }, { w: "c", n: 1 }], "w") ?? "", /missing key\(s\) "c"/);
});

f("two records that differ past the shortened text name the first field where they do", () => {
  // Both records shortened to 120 characters read the same: the difference was cut off.
  const items = (last: string) => ["item-number-0", "item-number-1", "item-number-2", "item-number-3", "item-number-4", "item-number-5", "item-number-6", last];
  const got = { user: "u1", n: 8, items: items("item-number-7") };
  assert.match(compareOrdered([got], [{ ...got, items: items("item-number-8") }]) ?? "", /\.\.\. \(at items\[7\]: got "item-number-7", expected "item-number-8"\)$/);
  assert.match(compareLastPerKey([got], [{ ...got, n: 9 }], "user") ?? "", /\.\.\. \(at n: got 8, expected 9\)$/);
  assert.match(compareMultiset([got, 1], [{ ...got, extra: true }, 1]) ?? "", /\.\.\. \(at extra: got nothing, expected true\)$/);
  assert.is(compareOrdered([1, 3], [1, 2]), "record 1 differs: got 3, expected 2");
});

f("the table has a row per scenario and a summary", () => {
  const table = formatTable([
    { file: "a", name: "first", outcome: "passed", ok: true, durationMs: 1234, failures: [], stderr: "" },
    { file: "b", name: "second", outcome: "failed", ok: false, durationMs: 50, reason: "step 2 (start): boom", failures: ["step 2 (start): boom"], stderr: "" },
    { file: "c", name: "third", outcome: "xfail", ok: true, durationMs: 10, reason: "not built", failures: ["not built"], stderr: "", expectFailure: "issue 5" },
  ]);
  const lines = table.split("\n");
  assert.match(lines[0]!, /^scenario\s+result\s+secs\s+reason$/);
  assert.match(lines[1]!, /^first\s+pass\s+1\.2$/);
  assert.match(lines[2]!, /^second\s+FAIL\s+0\.1\s+step 2 \(start\): boom$/);
  assert.match(lines[3]!, /^third\s+xfail\s+0\.0\s+not built$/);
  // Below the rows: each scenario to fix, by file, with every failure.
  assert.equal(lines.slice(4, 8), ["", "FAIL b (second)", "  step 2 (start): boom", ""]);
  assert.is(lines[lines.length - 1], "3 scenarios: 1 passed, 1 failed, 1 expected to fail");
});

f("a file that did not load: its row and FAIL line name it, its reason says only why", () => {
  const why = "scenarios/bad.scenario.yaml: invalid YAML: Nested mappings are not allowed in compact mappings at line 2, column 3";
  const table = formatTable([{ file: "scenarios/bad.scenario.yaml", name: "scenarios/bad.scenario.yaml", notLoaded: true, outcome: "failed", ok: false, durationMs: 3, reason: why, failures: [why], stderr: "" }]);
  const lines = table.split("\n");
  assert.match(lines[1]!, /^scenarios\/bad\.scenario\.yaml\s+FAIL\s+0\.0\s+invalid YAML: Nested mappings/);
  assert.equal(lines.slice(2, 5), ["", "FAIL scenarios/bad.scenario.yaml", "  invalid YAML: Nested mappings are not allowed in compact mappings at line 2, column 3"]);
});

f("a stream name JetStream refuses names its field, as other bad fields do (not an InvalidNameError once the steps ran)", () => {
  const why = String.raw`expected a stream name (stream names cannot contain . * > / \ or whitespace)`;
  assert.is(errorOf("job: j.ts\nsteps: []\nexpect:\n  - stream: COUNTS.x\n    count: 2"), `${FILE}: expect[0].stream: ${why}, got "COUNTS.x"`);
  assert.is(errorOf("job: j.ts\nsteps:\n  - wait: { output: { stream: 'A B', count: 1 } }"), `${FILE}: steps[0].wait.output.stream: ${why}, got "A B"`);
  assert.is(errorOf("job: j.ts\nstreams: [{ name: W*, subjects: [w] }]\nsteps: []"), `${FILE}: streams[0].name: ${why}, got "W*"`);
});

f("scenario files are found in folders, sorted; a missing path is an error", () => {
  const files = findScenarioFiles(["scenarios"]);
  assert.ok(files.length >= 5);
  assert.ok(files.every((x) => x.endsWith(".scenario.yaml")));
  assert.equal(files, [...files].sort());
  assert.throws(() => findScenarioFiles(["no/such/dir"]), /no such file or folder: no\/such\/dir/);
  // Beside a folder that has some, one without any (its files named *.yaml) went unnoticed: its scenarios never ran.
  assert.throws(() => findScenarioFiles(["scenarios", "examples/scenarios"]), (e: Error) => e.message === "no *.scenario.yaml files in examples/scenarios");
});

f("every shipped scenario file is valid", () => {
  for (const file of findScenarioFiles(["scenarios"])) loadScenario(file);
});

f.run();
