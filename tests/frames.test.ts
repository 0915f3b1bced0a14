import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeFrame, encodeRecords } from "../runtime/transport/frames.ts";
import { RecordBuilder } from "../runtime/transport/record-columns.ts";

const frames = suite("record frames");

/** What a consumer gets: each record as JSON.stringify/parse of it alone would give it (the rows format's meaning). */
const asJson = (values: unknown[]) => values.map((v) => JSON.parse(JSON.stringify(v)) as unknown);

/** Through a consumer's RecordBuilder (as the input gate decodes), or field by field without one. */
function roundTrip(values: unknown[], timestamps?: Array<number | undefined>, records: RecordBuilder | undefined = new RecordBuilder()): { wire: Record<string, unknown>; v: unknown[]; t?: Array<number | null> | undefined } {
  const payload = encodeRecords(values, timestamps);
  const frame = decodeFrame(new TextEncoder().encode(payload), records);
  if (frame.k !== "r") throw new Error(`not a records frame: ${frame.k}`);
  return { wire: JSON.parse(payload) as Record<string, unknown>, v: frame.v, t: frame.t };
}

frames("objects of one shape travel as columns and come back equal, keys in order", () => {
  const values = [{ k: "a", v: 1, n: { x: [1, 2] } }, { k: "b", v: 2, n: null }, { k: "é\u2028\"", v: -0.5, n: { y: "z" } }];
  const { wire, v } = roundTrip(values, [10, undefined, 30]);
  assert.ok("c" in wire && !("v" in wire), "sent as columns");
  assert.equal(v, asJson(values));
  assert.equal(v.map((o) => Object.keys(o as object)), [["k", "v", "n"], ["k", "v", "n"], ["k", "v", "n"]]);
});

frames("a column of strings goes as one joined string, with a separator none of them contains", () => {
  const plain = [{ k: "a", v: 1 }, { k: "", v: 2 }, { k: "c d", v: 3 }];
  const { wire, v } = roundTrip(plain);
  assert.equal((wire.c as unknown[])[0], { s: "|", j: "a||c d" }, "joined");
  assert.ok(Array.isArray((wire.c as unknown[])[1]), "numbers stay an array");
  assert.equal(v, asJson(plain));
  const pipes = [{ k: "a|b" }, { k: "|" }, { k: "x~" }];
  const second = roundTrip(pipes);
  assert.equal(((second.wire.c as unknown[])[0] as { s: string }).s, "^", "the first separator absent from every value");
  assert.equal(second.v, asJson(pipes));
  const all = [{ k: "|~^" }, { k: "a" }];
  const third = roundTrip(all);
  assert.ok(Array.isArray((third.wire.c as unknown[])[0]), "every separator occurs: an array");
  assert.equal(third.v, asJson(all));
  const mixed = [{ k: "a" }, { k: 1 }];
  assert.ok(Array.isArray((roundTrip(mixed).wire.c as unknown[])[0]), "not all strings: an array");
  assert.equal(roundTrip(mixed).v, asJson(mixed));
  const one = [{ k: "only|one" }];
  assert.equal(roundTrip(one).v, asJson(one));
});

frames("timestamps survive either format", () => {
  assert.equal(roundTrip([{ a: 1 }, { a: 2 }], [5, undefined]).t, [5, null]);
  assert.equal(roundTrip([1, 2], [undefined, 7]).t, [null, 7]);
  assert.is(roundTrip([{ a: 1 }]).t, undefined);
});

frames("anything columns would change goes as rows, with JSON's meaning", () => {
  const cases: Array<[string, unknown[]]> = [
    ["keys in another order", [{ a: 1, b: 2 }, { b: 3, a: 4 }]],
    ["a missing key", [{ a: 1, b: 2 }, { a: 3 }]],
    ["an extra key", [{ a: 1 }, { a: 3, b: 4 }]],
    ["an undefined value (JSON drops it from an object)", [{ a: 1, b: 2 }, { a: 3, b: undefined }]],
    ["a function value", [{ a: 1, f: () => 1 }]],
    ["a Date record (toJSON)", [new Date(0), new Date(1)]],
    ["a class instance", [new (class P { x = 1; })()]],
    ["an own __proto__ key", [JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown]],
    ["an empty object", [{}, {}]],
    ["numbers, strings, arrays, null", [1, "two", [3], null]],
    ["objects after a non-object", [1, { a: 1 }]],
  ];
  for (const [what, values] of cases) {
    const { wire, v } = roundTrip(values);
    assert.ok("v" in wire && !("c" in wire), `${what}: sent as rows`);
    assert.equal(v, asJson(values), what);
  }
  const polluted = roundTrip([JSON.parse('{"__proto__": {"p": 1}}') as unknown]).v[0] as Record<string, unknown>;
  assert.is(Object.getPrototypeOf(polluted), Object.prototype, "an own __proto__ key stays a key");
});

frames("bytes (a format bytes source's records) come back as bytes, not {type, data} objects", () => {
  const values = [new Uint8Array([1, 2, 255]), Buffer.from("héllo"), new Uint8Array(new ArrayBuffer(8), 2, 3)];
  const { wire, v, t } = roundTrip(values, [1, 2, 3]);
  assert.ok("b" in wire, "sent as base64");
  for (let i = 0; i < values.length; i++) {
    assert.ok(v[i] instanceof Uint8Array, `record ${i} is bytes`);
    assert.equal([...(v[i] as Uint8Array)], [...values[i]!]);
  }
  assert.equal(t, [1, 2, 3]);
});

frames("numeric-looking keys keep the order JSON gives them", () => {
  const values = [{ b: 1, 2: "x", a: 3, 1: "y" }, { b: 2, 2: "z", a: 4, 1: "w" }];
  const { v } = roundTrip(values);
  assert.equal(v, asJson(values));
  assert.equal(Object.keys(v[0] as object), Object.keys(asJson(values)[0] as object));
});

frames("records rebuilt by a shape's function equal those built field by field, whatever the field names", () => {
  const names = ["k", "", "a b", "quote\"d", "back\\slash", "line\u2028sep", "é", "constructor", "toString", "1", "0x", "c0", "columns", "i", "n", "out"];
  const records = new RecordBuilder();
  for (const shape of [names, ["v", "k"], ["k", "v"], names.slice(3, 9)]) {
    const values = [0, 1, 2].map((r) => Object.fromEntries(shape.map((f, j) => [f, j % 2 === 0 ? `${f}-${r}` : r * 10 + j])));
    const built = roundTrip(values, undefined, records).v;
    assert.equal(built, asJson(values));
    assert.equal(built, roundTrip(values, undefined, undefined).v);
    assert.equal(built.map((o) => Object.keys(o as object)), asJson(values).map((o) => Object.keys(o as object)));
  }
});

frames("frames that no weir producer sends decode as field by field: __proto__, names that are no strings, more shapes than kept", () => {
  const records = new RecordBuilder();
  const decode = (fields: unknown[], columns: unknown[]) => {
    const data = new TextEncoder().encode(JSON.stringify({ k: "r", f: fields, c: columns }));
    const [a, b] = [decodeFrame(data, records), decodeFrame(data)];
    return a.k === "r" && b.k === "r" ? [a.v, b.v] : [];
  };
  const [proto, protoLoop] = decode(["__proto__", "k"], [[{ polluted: true }], ["x"]]);
  assert.equal(proto, protoLoop);
  assert.is(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
  const [numbered, numberedLoop] = decode([1, 2], [["a"], ["b"]]);
  assert.equal(numbered, numberedLoop);
  assert.equal(numbered, [{ 1: "a", 2: "b" }]);
  // Lists whose names join to one already built must not get its function.
  decode(["a", "b"], [[1], [2]]);
  const [joined, joinedLoop] = decode(["a\u0000b"], [[7]]);
  assert.equal(joined, joinedLoop);
  decode([""], [[1]]);
  const [nulled, nulledLoop] = decode([null], [[3]]);
  assert.equal(nulled, nulledLoop);
  for (let shape = 0; shape < 100; shape++) {
    const [many, manyLoop] = decode([`f${shape}`, "k"], [[shape], ["x"]]);
    assert.equal(many, manyLoop);
    assert.equal(many, [{ [`f${shape}`]: shape, k: "x" }]);
  }
});

frames.run();
