import type { KeyScope, StateAddress, StateRequestHandler, ValueState, ValueStateDescriptor } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { read, written, type StoredValueDecoder } from "./submit.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";

export class ValueStateHandle<T> implements StoredValueDecoder<T | undefined>, ValueState<T> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: ValueStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  value(): Promise<T | undefined> {
    return read(this.handler, stateRequest.get(this.address), this);
  }

  update(value: T | undefined): Promise<void> {
    try {
      return written(this.handler, stateRequest.put(this.address, value === undefined ? undefined : encodeWith(this.descriptor.codec, value, this)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  /** The stored value as the handle's reads answer it (StoredValueDecoder). */
  decodeStored(stored: unknown): T | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }
}
