// The job's own modules (runtime/cluster/job-modules.ts): what workers of one job compare besides their
// functions' text, so that a worker whose helper module changed is told apart and the file is named.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamEnvironment, Sources, type SinkDef } from "../mod.ts";
import { resolveJobOptions } from "../runtime/api/options.ts";
import { identityDifference, jobIdentity } from "../runtime/cluster/job-identity.ts";
import { JOB_FILE, jobModules } from "../runtime/cluster/job-modules.ts";

const discard: SinkDef<number> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };

/** A job folder: job.ts importing ./lib/step.ts (which imports ./rate.ts) and a package. */
function jobFolder(step: number, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "weir-modules-"));
  mkdirSync(join(dir, "lib"));
  writeFileSync(join(dir, "job.ts"), `import * as t from "io-ts";\nimport { STEP } from "./lib/step.ts";\nexport const codec = t.number;\nexport default STEP;\n`);
  writeFileSync(join(dir, "lib/step.ts"), `import { RATE } from "./rate.ts";\nexport const STEP: number = ${step} * RATE;\n`);
  writeFileSync(join(dir, "lib/rate.ts"), `export const RATE = 1;\n`);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

test("the job file and the local files it imports, by path from its folder; packages and weir's own sources left out", async () => {
  const dir = jobFolder(1);
  try {
    const modules = await jobModules(join(dir, "job.ts"));
    assert.equal(Object.keys(modules ?? {}), [JOB_FILE, "lib/rate.ts", "lib/step.ts"]);
    for (const d of Object.values(modules ?? {})) assert.match(d, /^[0-9a-f]{12}$/);
    // This repository's example imports "weir" (a package here): only the file itself.
    const example = await jobModules("examples/wordcount.ts");
    assert.equal(Object.keys(example ?? {}), [JOB_FILE]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two copies of a job in other folders and under other names are the same; a changed helper is named", async () => {
  const dirs = [jobFolder(1), jobFolder(1), jobFolder(2), jobFolder(1, { "lib/rate.ts": "export const RATE = 1; // a comment is a change too\n" })];
  try {
    writeFileSync(join(dirs[1]!, "renamed.ts"), `import * as t from "io-ts";\nimport { STEP } from "./lib/step.ts";\nexport const codec = t.number;\nexport default STEP;\n`);
    const [a, b, c, d] = await Promise.all([jobModules(join(dirs[0]!, "job.ts")), jobModules(join(dirs[1]!, "renamed.ts")), jobModules(join(dirs[2]!, "job.ts")), jobModules(join(dirs[3]!, "job.ts"))]);
    const job = resolveJobOptions({ name: "modules", parallelism: 2 });
    const graph = () => {
      const env = StreamEnvironment.create({ name: "modules", nats: "nats://127.0.0.1:1", parallelism: 2 });
      env.fromSource(Sources.array([1, 2, 3])).keyBy((n) => n % 2).reduce((x, y) => x + y).sinkTo(discard);
      return env.jobGraph();
    };
    const leader = jobIdentity(graph(), job, "system", a);
    assert.is(identityDifference(leader, jobIdentity(graph(), job, "system", b)), undefined);
    assert.is(identityDifference(leader, jobIdentity(graph(), job, "system", c)), "other code in lib/step.ts (another version of the job?)");
    assert.is(identityDifference(leader, jobIdentity(graph(), job, "system", d)), "other code in lib/rate.ts (another version of the job?)");
    // A worker that imports one more file, and one whose modules are not known (a program's worker run from a package).
    writeFileSync(join(dirs[3]!, "lib/rate.ts"), `export { RATE } from "./extra.ts";\n`);
    writeFileSync(join(dirs[3]!, "lib/extra.ts"), `export const RATE = 1;\n`);
    const e = await jobModules(join(dirs[3]!, "job.ts"));
    assert.is(identityDifference(leader, jobIdentity(graph(), job, "system", e)), "other code in lib/extra.ts (the leader does not import it), lib/rate.ts (another version of the job?)");
    assert.is(identityDifference(leader, jobIdentity(graph(), job, "system")), undefined);
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
});

test("a file that does not parse or does not exist has no module list (the job's loading says why)", async () => {
  const dir = jobFolder(1, { "job.ts": "export const = ;\n" });
  try {
    assert.is(await jobModules(join(dir, "job.ts")), undefined);
    assert.is(await jobModules(join(dir, "missing.ts")), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
