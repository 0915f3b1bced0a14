import type { KeyScope, ListState, ListStateDescriptor, StateAddress, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { StateCodecError } from "../errors.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { read, written, type StoredValueDecoder } from "./submit.ts";

/** A list is stored whole under its key; `add` is an Append request, so it never reads in the handle. */
export class ListStateHandle<T> implements StoredValueDecoder<T[]>, ListState<T> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: ListStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  get(): Promise<T[]> {
    return read(this.handler, stateRequest.get(this.address), this);
  }

  /** The stored value as the handle's reads answer it (StoredValueDecoder). */
  decodeStored(stored: unknown): T[] {
    // Absent reads as empty, as Flink's ListState.get() gives an empty iterable.
    if (stored === undefined) return [];
    if (!Array.isArray(stored)) {
      throw new StateCodecError(this.state, this.scope.key, "read", [`stored list is not an array: ${typeof stored}`]);
    }
    const out = new Array<T>(stored.length);
    for (let i = 0; i < stored.length; i++) out[i] = decodeWith(this.descriptor.codec, stored[i], this, `element ${i}`);
    return out;
  }

  add(value: T): Promise<void> {
    try {
      return written(this.handler, stateRequest.append(this.address, [this.encodeElement(value, 0)]));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  addAll(values: Iterable<T>): Promise<void> {
    try {
      const list = this.elements(values, "addAll");
      if (list.length === 0) return Promise.resolve();
      return written(this.handler, stateRequest.append(this.address, this.encodeAll(list)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  update(values: Iterable<T>): Promise<void> {
    try {
      const list = this.elements(values, "update");
      return written(this.handler, stateRequest.put(this.address, list.length === 0 ? undefined : this.encodeAll(list)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  /**
   * The elements as an array. A Set or a generator had no `length`: addAll stored a list holding one
   * undefined, which every later read refused as if the codec had changed.
   */
  private elements(values: Iterable<T>, method: string): readonly T[] {
    if (Array.isArray(values)) return values;
    if (typeof values !== "string" && typeof (values as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] === "function") return Array.from(values);
    throw new StateCodecError(this.state, this.scope.key, "write", [`${method} takes an array (or another iterable) of elements, not ${values == null ? String(values) : `a ${typeof values}`}`]);
  }

  private encodeAll(values: readonly T[]): unknown[] {
    const out = new Array<unknown>(values.length);
    for (let i = 0; i < values.length; i++) out[i] = this.encodeElement(values[i]!, i);
    return out;
  }

  /** Lists never hold undefined (as in Flink, where null elements are refused): JSON would turn it into null. */
  private encodeElement(value: T, index: number): unknown {
    if (value === undefined) throw new StateCodecError(this.state, this.scope.key, "write", [`element ${index}: a list element cannot be undefined`]);
    return encodeWith(this.descriptor.codec, value, this, `element ${index}`);
  }
}
