import type { KeyScope, StateAddress, StateRequestHandler, ValueState, ValueStateDescriptor } from "../contracts.ts";
import { StateRequestType } from "../contracts.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";

export class ValueStateHandle<T> implements ValueState<T> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: ValueStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  async value(): Promise<T | undefined> {
    const stored = await this.handler.submit(StateRequestType.Get, this.address);
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }

  async update(value: T | undefined): Promise<void> {
    const encoded = value === undefined ? undefined : encodeWith(this.descriptor.codec, value, this);
    await this.handler.submit(StateRequestType.Put, this.address, encoded);
  }

  async clear(): Promise<void> {
    await this.handler.submit(StateRequestType.Put, this.address, undefined);
  }
}
