// The README's configuration table against the codecs: every option the job codec accepts (nested ones
// as `state.cacheMaxEntries`) has exactly one row, no row names an option that does not exist, and each
// documented default is what resolveJobOptions resolves. No server involved.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as t from "io-ts";
import { JobOptionsCodec, resolveJobOptions } from "../runtime/api/options.ts";
import { allowedProps } from "../runtime/core/validation.ts";

const docs = suite("configuration docs");

interface Row { readonly option: string; readonly defaults: string; readonly text: string }

/** The rows of the table under "## Configuration". */
function readmeRows(): Row[] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.split(/^## Configuration\s*$/m)[1]?.split(/^## /m)[0];
  if (section === undefined) throw new Error("README.md has no Configuration section");
  const rows: Row[] = [];
  for (const line of section.split("\n")) {
    const m = /^\|\s*`([^`]+)`\s*\|([^|]*)\|/.exec(line);
    if (m) rows.push({ option: m[1]!, defaults: m[2]!.trim(), text: line });
  }
  return rows;
}

/** Every leaf option of the codec: nested object options as `parent.child`. */
function codecOptions(codec: t.Mixed, prefix = ""): string[] {
  const props = allowedProps(codec) ?? {};
  return Object.entries(props).flatMap(([k, c]) => (allowedProps(c) ? codecOptions(c, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

function at(o: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

/** A documented default: a literal in backticks, `required`, `unset`, another option's name, or `N × option`. */
function documented(cell: string): Array<{ token: string }> {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => ({ token: m[1]! }));
}

function literal(token: string): unknown {
  if (token === "os.tmpdir()") return tmpdir();
  return JSON.parse(token.replace(/_/g, ""));
}

docs("every option of the job codec has one row, and every row is an option", () => {
  const rows = readmeRows().map((r) => r.option);
  const options = codecOptions(JobOptionsCodec as unknown as t.Mixed);
  const dup = rows.filter((r, i) => rows.indexOf(r) !== i);
  assert.equal(dup, [], `rows listed twice: ${dup.join(", ")}`);
  const missing = options.filter((o) => !rows.includes(o));
  const extra = rows.filter((r) => !options.includes(r));
  assert.equal(missing, [], `options missing from the README table: ${missing.join(", ")}`);
  assert.equal(extra, [], `README rows that are no option: ${extra.join(", ")}`);
});

docs("every documented default is the resolved default", () => {
  const plain = resolveJobOptions({ name: "docs" });
  const checkpointed = resolveJobOptions({ name: "docs", checkpointIntervalMs: 1234 });
  const rows = readmeRows();
  const names = new Set(rows.map((r) => r.option));
  for (const { option, defaults } of rows) {
    const tokens = documented(defaults).map((d) => d.token);
    if (defaults === "required") {
      assert.throws(() => resolveJobOptions({}), /name/, `${option} is documented as required`);
      continue;
    }
    if (defaults === "unset") {
      assert.is(at(plain, option), undefined, `${option}: documented unset`);
      continue;
    }
    assert.ok(tokens.length > 0, `${option}: the default "${defaults}" has no value in backticks`);
    if (/with checkpoints/.test(defaults)) {
      assert.equal(at(checkpointed, option), literal(tokens[0]!), `${option} with checkpoints`);
      assert.equal(at(plain, option), literal(tokens[1]!), `${option} without checkpoints`);
      continue;
    }
    const times = /^(\d+) × (\S+)$/.exec(tokens[0]!);
    if (times && names.has(times[2]!)) {
      // "a multiple of another option": set that one and see this one follow.
      assert.is(at(checkpointed, option), Number(times[1]) * (at(checkpointed, times[2]!) as number), `${option} is ${tokens[0]}`);
      continue;
    }
    if (names.has(tokens[0]!)) {
      // "same as another option": set that one and see this one follow.
      assert.is(at(checkpointed, option), at(checkpointed, tokens[0]!), `${option} follows ${tokens[0]}`);
      continue;
    }
    assert.equal(at(plain, option), literal(tokens[0]!), `${option}: README says ${tokens[0]}, resolved ${JSON.stringify(at(plain, option))}`);
  }
});

/** Every leaf option whose codec is a fixed set of strings (t.keyof), with its values. */
function enumOptions(codec: t.Mixed, prefix = ""): Array<{ option: string; values: string[] }> {
  const props = allowedProps(codec) ?? {};
  return Object.entries(props).flatMap(([k, c]) => {
    if (allowedProps(c)) return enumOptions(c, `${prefix}${k}.`);
    const keys = (c as { _tag?: string; keys?: Record<string, unknown> })._tag === "KeyofType" ? Object.keys((c as t.KeyofC<Record<string, unknown>>).keys) : [];
    return keys.length ? [{ option: `${prefix}${k}`, values: keys }] : [];
  });
}

docs("every allowed value of an option with a fixed set of values is in its row", () => {
  const rows = readmeRows();
  const enums = enumOptions(JobOptionsCodec as unknown as t.Mixed);
  assert.ok(enums.some((e) => e.option === "mode"), "the codec's enumerations were found");
  for (const { option, values } of enums) {
    const row = rows.find((r) => r.option === option)!;
    for (const v of values) assert.ok(row.text.includes(`"${v}"`), `${option}: the README row does not name the allowed value "${v}"`);
  }
});

docs.run();
