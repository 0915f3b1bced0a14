// `weir run` logs off a terminal (stderr a pipe, as here): one JSON object per line, with level and job,
// an error with its cause chain; `--log-level` filters; a bad level is a one-line error naming the flag.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("logs");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/fail-once.ts";

interface Line { level: string; job: string; msg: string; time: string; err?: { message: string; cause?: Line["err"] } }

function parseLines(stderr: string): Line[] {
  return stderr.trimEnd().split("\n").map((l, i) => {
    try {
      return JSON.parse(l) as Line;
    } catch {
      throw new Error(`stderr line ${i + 1} is not JSON: ${l}`);
    }
  });
}

function causes(err: Line["err"]): string[] {
  const out: string[] = [];
  for (let e = err; e; e = e.cause) out.push(e.message);
  return out;
}

test("every line is JSON with level and job; the failure carries its cause chain; the run recovers", async () => {
  // Bounded: 4000 records per generator subtask; the user function throws once, at record 1500.
  const r = await runWeir(["run", JOB, "--nats", nats.url], { env: { JOB_NAME: "logged", COUNT: "4000" }, deadlineMs: 120_000 });
  assert.is(r.code, 0, r.stderr.slice(-800));
  const lines = parseLines(r.stderr);
  for (const l of lines) {
    assert.ok(["trace", "debug", "info", "warn", "error", "fatal"].includes(l.level), JSON.stringify(l));
    assert.is(l.job, "logged");
    assert.type(l.msg, "string");
    assert.ok(!Number.isNaN(Date.parse(l.time)), "an ISO time");
  }
  assert.ok(lines.some((l) => l.level === "info" && l.msg.startsWith("weir: running logged")), "the running line");
  const failure = lines.find((l) => l.level === "error" && /subtask check#\d failed/.test(l.msg) && l.err?.cause);
  assert.ok(failure, `an error line for the failed subtask, with its error: ${r.stderr.slice(-1500)}`);
  const chain = causes(failure!.err);
  assert.match(chain[0]!, /^operator "KeyedProcess" \(subtask \d\) failed for key "k\d+": boom once/, JSON.stringify(chain));
  assert.is(chain.at(-2), "boom once", JSON.stringify(chain));
  assert.is(chain.at(-1), "the root cause", JSON.stringify(chain));
  assert.match(r.stdout, /^weir: logged finished/m, "the summary stays on stdout");
  // The closing progress entry (and every 5 s one): its figures as fields, the checkpoints completed too.
  const progress = lines.filter((l) => / in \d/.test(l.msg)).at(-1) as unknown as Record<string, unknown> | undefined;
  assert.ok(progress, "a progress entry");
  for (const field of ["state", "recordsIn", "recordsOut", "deadLetters", "restarts", "checkpoints"]) assert.type(progress![field], field === "state" ? "string" : "number", `field ${field} in ${JSON.stringify(progress)}`);
});

test("--log-level warn drops info lines and keeps the error", async () => {
  const r = await runWeir(["run", JOB, "--nats", nats.url, "--log-level", "warn"], { env: { JOB_NAME: "quietlog", COUNT: "3000" }, deadlineMs: 120_000 });
  assert.is(r.code, 0, r.stderr.slice(-800));
  const lines = parseLines(r.stderr);
  assert.ok(lines.length > 0, "the error is still logged");
  for (const l of lines) assert.ok(["warn", "error", "fatal"].includes(l.level), `only warn and above: ${JSON.stringify(l)}`);
  assert.ok(lines.some((l) => l.level === "error" && causes(l.err).includes("the root cause")));
});

test("a promise the job's code neither awaits nor catches ends the run as a crash, with one fatal JSON line", async () => {
  const r = await runWeir(["run", "tests/fixtures/jobs/floating-rejection.ts", "--nats", nats.url], { env: { JOB_NAME: "floating" }, deadlineMs: 120_000 });
  assert.is(r.code, 1, r.stderr.slice(-800));
  const lines = parseLines(r.stderr);
  const fatal = lines.filter((l) => l.level === "fatal");
  assert.is(fatal.length, 1, r.stderr.slice(-800));
  assert.match(fatal[0]!.msg, /^weir: unhandled promise rejection: nobody awaits me .*the next run resumes from the last checkpoint$/);
});

test("an unknown --log-level is a one-line error naming the flag", async () => {
  const r = await runWeir(["run", JOB, "--nats", nats.url, "--log-level", "x"]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr.split("\n")[0]!, /^weir: option '--log-level <level>' argument 'x' is invalid\. --log-level expects one of trace, debug, info, warn, error, fatal, got "x" \(weir --help: usage\)$/, r.stderr);
});

test.run();
