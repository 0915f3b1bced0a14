#!/usr/bin/env node
// The whole suite: type-check, then every tests/**/*.test.ts in its own uvu process (isolation, a
// per-file time limit, three at a time on two cores). uvu prints no failed count and exits 0 when
// nothing ran, so this wrapper sums `Total:`/`Passed:` itself, counts a crashed or timed-out file as a
// failure, and fails on zero tests. Usage: node scripts/test.mjs [filter substring ...]
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { availableParallelism } from "node:os";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
const fileTimeoutMs = Number(process.env.WEIR_TEST_FILE_TIMEOUT_MS ?? 480_000);
// The files wait on processes and servers much of the time: two long ones at a time kept two cores ~60%
// busy (sampled every 5 s), a full run three at a time ~92%, and it took 628-849 s instead of 899-995 s.
const concurrency = Number(process.env.WEIR_TEST_CONCURRENCY ?? Math.max(1, Math.min(3, availableParallelism() + 1)));

function findTests(dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "fixtures" ? [] : findTests(path);
    return name.endsWith(".test.ts") ? [path] : [];
  });
}

function run(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, FORCE_COLOR: "0" }, detached: true });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[timed out after ${timeoutMs} ms]\n`;
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ }
    }, timeoutMs);
    child.on("close", (code, signal) => { clearTimeout(timer); resolve({ code: code ?? 1, signal, out }); });
  });
}

let passed = 0;
let failed = 0;
const failures = [];
/** Per failed file, the lines that say what failed: CI shows only the head and the tail of a long log. */
const digests = [];
const DIGEST_LINES = 30;

function digestOf(rel, out) {
  const lines = out.split("\n");
  const picked = [];
  lines.forEach((l, i) => {
    // uvu's own line: FAIL, two spaces, the suite, the test's name in quotes (not a job's "FAIL" output).
    if (/^\s*FAIL {2}.*"$/.test(l)) picked.push(l.trim(), ...lines.slice(i + 1, i + 3).map((x) => `  ${x.trim()}`));
    else if (/stalled:|\[timed out after/.test(l)) picked.push(l.trim());
  });
  return [`${rel}:`, ...picked.slice(0, DIGEST_LINES).map((l) => `  ${l}`)].join("\n");
}

const tc = await run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit", "--pretty", "false"], 300_000);
if (tc.code === 0 && filters.length === 0) {
  console.log("typecheck: ok");
  passed++;
} else if (tc.code !== 0) {
  console.log(`typecheck: FAILED\n${tc.out}`);
  failed++;
  failures.push("typecheck");
}

const files = findTests(join(root, "tests")).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
// The long files first (several minutes each: processes killed and restarted), so the runners finish
// together instead of one running a long file alone at the end.
const LONG = ["crash-recovery.test.ts", "workers.test.ts", "cluster-failover.test.ts", "workers-cluster.test.ts", "crash-recovery-windows.test.ts", "cli-stop.test.ts", "nats-restart.test.ts", "scenarios.test.ts"];
/** Seconds between a file's last test and its process's exit past which the line says so (start-up takes ~1 s). */
const LINGER_NOTED_S = 5;
const rank = (f) => { const i = LONG.findIndex((l) => f.endsWith(`/${l}`)); return i < 0 ? LONG.length : i; };
const queue = [...files].sort((a, b) => rank(a) - rank(b));
async function worker() {
  for (let file = queue.shift(); file; file = queue.shift()) {
    const rel = relative(root, file);
    const started = Date.now();
    const r = await run(process.execPath, ["--import", "tsx", join(root, "node_modules/uvu/bin.js"), "-c", "false", join(root, "tests"), "^" + rel.replace(/^tests\//, "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$"], fileTimeoutMs);
    const total = Number(/Total:\s+(\d+)/.exec(r.out)?.[1] ?? 0);
    const ok = Number(/Passed:\s+(\d+)/.exec(r.out)?.[1] ?? 0);
    let bad = total - ok;
    if ((r.code !== 0 || total === 0) && bad === 0) bad = 1; // crashed, hung or ran nothing
    passed += ok;
    failed += bad;
    const wall = (Date.now() - started) / 1000;
    // A timer left running after the tests (a race's losing sleep) holds the process: the suite waits for it.
    const ran = Number(/Duration:\s+([\d.]+)ms/.exec(r.out)?.[1] ?? Number.NaN) / 1000;
    const lingered = wall - ran > LINGER_NOTED_S ? `, lingered ${(wall - ran).toFixed(0)}s after its tests` : "";
    console.log(`${bad ? "FAIL" : "ok  "} ${rel} (${ok}/${total}, ${wall.toFixed(1)}s${lingered})`);
    if (bad) { failures.push(rel); digests.push(digestOf(rel, r.out)); console.log(r.out.split("\n").map((l) => `    ${l}`).join("\n")); }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
if (failures.length) console.log(`\nwhat failed, in short:\n${digests.join("\n")}\n\nfailed: ${failures.join(", ")}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
