import type { KeyScope, ReducingState, ReducingStateDescriptor, StateAddress, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { read, readModifyWrite, written, type StoredValueDecoder } from "./submit.ts";

/** Keeps one value, folded with `reduce` on every add (read, reduce, write: same-key records are serialized by the runtime). */
export class ReducingStateHandle<T> implements StoredValueDecoder<T | undefined>, ReducingState<T> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: ReducingStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  get(): Promise<T | undefined> {
    return read(this.handler, stateRequest.get(this.address), this);
  }

  add(value: T): Promise<void> {
    try {
      encodeWith(this.descriptor.codec, value, this); // refuse a bad input before reading
    } catch (e) {
      return Promise.reject(e);
    }
    return readModifyWrite(this.handler, stateRequest.get(this.address), (stored) => {
      const current = this.decodeStored(stored);
      return encodeWith(this.descriptor.codec, current === undefined ? value : this.descriptor.reduce(current, value), this);
    });
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  /** The stored value as the handle's reads answer it (StoredValueDecoder). */
  decodeStored(stored: unknown): T | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }
}
