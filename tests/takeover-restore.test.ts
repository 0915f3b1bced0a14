// What a worker taking over a live run restores (actors/worker/takeover-restore.ts), as pure logic: the
// job log's last commit after the last deployment, else what that deployment restored, whatever the run
// was started with. tests/workers-takeover runs it on real workers.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { diedRunLineage, takeoverLine, takeoverRestore } from "../actors/worker/takeover-restore.ts";

const s = suite("takeover restore");
const at = (ms: number) => new Date(1_700_000_000_000 + ms);
const deploy = (ms: number, restoreId?: number) => ({ record: restoreId === undefined ? {} : { restoreId }, storedAt: at(ms) });
const commit = (ms: number, checkpointId: number) => ({ record: { checkpointId }, storedAt: at(ms) });

s("a commit stored after the last deployment is restored, whatever the run started from", () => {
  assert.is(takeoverRestore("latest", deploy(0, 3), commit(10, 9)), 9, "not `latest`, which a stream leader behind may answer older");
  assert.is(takeoverRestore("none", deploy(0), commit(10, 9)), 9);
  assert.is(takeoverRestore(4, deploy(0, 4), commit(10, 9)), 9);
  assert.is(takeoverRestore("latest", deploy(10, 3), commit(10, 9)), 9, "stored in the same millisecond");
});

s("no commit since the last deployment: what that deployment restored", () => {
  assert.is(takeoverRestore("latest", deploy(20, 8), commit(10, 7)), 8, "the commit before it was an earlier epoch's");
  assert.is(takeoverRestore("none", deploy(0, 8), undefined), 8);
});

s("nothing committed or restored: `latest` stays `latest` (its deployment found no checkpoint); `none` or an id starts afresh", () => {
  assert.is(takeoverRestore("latest", deploy(0), undefined), "latest");
  assert.is(takeoverRestore("none", deploy(0), undefined), "none");
  assert.is(takeoverRestore(5, deploy(20), commit(10, 4)), "none");
});

s("the log line names the checkpoint and where it came from", () => {
  assert.is(takeoverLine(9, "latest"), "taking over the running job: restoring checkpoint 9, the last its job log recorded");
  assert.is(takeoverLine("none", 5), "taking over the running job: restoring nothing (no checkpoint committed since its start) rather than --restore 5");
});

s("a new run continues the lineage of a run that died, not of one that ended, and not without checkpoints", () => {
  const deployed = (ms: number) => ({ record: { lineage: "run-1" }, storedAt: at(ms) });
  const ended = (ms: number) => ({ record: { kind: "end" }, storedAt: at(ms) });
  assert.is(diedRunLineage(true, deployed(10), undefined), "run-1", "killed: no end in the log");
  assert.is(diedRunLineage(true, deployed(10), ended(5)), "run-1", "the end of an earlier run");
  assert.is(diedRunLineage(true, deployed(10), ended(20)), undefined, "it ended: the new run is its own");
  assert.is(diedRunLineage(false, deployed(10), undefined), undefined, "without checkpoints every run reads its input as its own");
  assert.is(diedRunLineage(true, { record: {}, storedAt: at(10) }, undefined), undefined, "a deployment of a version that recorded no lineage");
});

s.run();
