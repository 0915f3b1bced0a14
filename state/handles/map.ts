import type { KeyScope, MapState, MapStateDescriptor, ScanPage, StateAddress, StateIterable, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { StateCodecError } from "../errors.ts";
import { canonicalJson } from "../key-groups.ts";
import { baseAddress, entryAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { StateIteration } from "./iteration.ts";

/** Entries per Scan request when iterating a map: iteration holds one page in memory, never the whole map. */
export const DEFAULT_SCAN_PAGE_SIZE = 256;

/**
 * Each map entry is its own state entry, addressed by `userKeyId` = canonical JSON of the encoded map key.
 * Iteration pages through Scan requests in `userKeyId` order (the same order on every backend).
 */
export class MapStateHandle<K, V> implements MapState<K, V> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(
    private readonly descriptor: MapStateDescriptor<K, V>,
    readonly scope: KeyScope,
    private readonly handler: StateRequestHandler,
    private readonly pageSize = DEFAULT_SCAN_PAGE_SIZE,
  ) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  async get(key: K): Promise<V | undefined> {
    const stored = await this.handler.submit(stateRequest.get(entryAddress(this.address, this.userKeyId(key))));
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }

  /** `put(k, undefined)` removes the entry, as `ValueState.update(undefined)` deletes. */
  async put(key: K, value: V): Promise<void> {
    const encoded = value === undefined ? undefined : encodeWith(this.descriptor.codec, value, this);
    await this.handler.submit(stateRequest.put(entryAddress(this.address, this.userKeyId(key)), encoded));
  }

  async putAll(entries: Iterable<readonly [K, V]> | Record<string, V>): Promise<void> {
    const pairs: Iterable<readonly [unknown, V]> = isIterable(entries) ? entries : Object.entries(entries);
    // Encode everything first: a bad entry fails the call before any entry is written.
    const writes: Array<[string, unknown]> = [];
    for (const [k, v] of pairs) writes.push([this.userKeyId(k as K), v === undefined ? undefined : encodeWith(this.descriptor.codec, v, this)]);
    await Promise.all(writes.map(([id, v]) => this.handler.submit(stateRequest.put(entryAddress(this.address, id), v))));
  }

  async remove(key: K): Promise<void> {
    await this.handler.submit(stateRequest.put(entryAddress(this.address, this.userKeyId(key)), undefined));
  }

  async contains(key: K): Promise<boolean> {
    return (await this.handler.submit(stateRequest.get(entryAddress(this.address, this.userKeyId(key))))) !== undefined;
  }

  entries(): StateIterable<[K, V]> {
    return new StateIteration(() => this.entryItems());
  }

  keys(): StateIterable<K> {
    return new StateIteration(() => this.keyItems());
  }

  values(): StateIterable<V> {
    return new StateIteration(() => this.valueItems());
  }

  async isEmpty(): Promise<boolean> {
    const page = (await this.handler.submit(stateRequest.scan(this.address, undefined, 1))) as ScanPage;
    return page.entries.length === 0;
  }

  async clear(): Promise<void> {
    await this.handler.submit(stateRequest.clearMap(this.address));
  }

  private async *entryItems(): AsyncIterable<[K, V]> {
    for await (const page of this.pages()) {
      for (const [id, stored] of page) yield [this.decodeKey(id), decodeWith(this.descriptor.codec, stored, this)];
    }
  }

  private async *keyItems(): AsyncIterable<K> {
    for await (const page of this.pages()) for (const [id] of page) yield this.decodeKey(id);
  }

  private async *valueItems(): AsyncIterable<V> {
    for await (const page of this.pages()) for (const [, stored] of page) yield decodeWith(this.descriptor.codec, stored, this);
  }

  private async *pages(): AsyncIterable<ScanPage["entries"]> {
    let cursor: string | undefined;
    do {
      const page = (await this.handler.submit(stateRequest.scan(this.address, cursor, this.pageSize))) as ScanPage;
      if (page.entries.length > 0) yield page.entries;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  private userKeyId(key: K): string {
    if (key === undefined) throw new StateCodecError(this.state, this.scope.key, "write", ["map key: a map key cannot be undefined"]);
    return canonicalJson(encodeWith(this.descriptor.keyCodec, key, this, "map key"));
  }

  private decodeKey(userKeyId: string): K {
    return decodeWith(this.descriptor.keyCodec, JSON.parse(userKeyId), this, "map key");
  }
}

function isIterable<T>(x: unknown): x is Iterable<T> {
  return typeof (x as { [Symbol.iterator]?: unknown })?.[Symbol.iterator] === "function";
}
