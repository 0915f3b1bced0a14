import type { KeyScope, ReducingState, ReducingStateDescriptor, StateAddress, StateRequestHandler } from "../contracts.ts";
import { StateRequestType } from "../contracts.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";

/** Keeps one value, folded with `reduce` on every add (read, reduce, write: same-key records are serialized by the runtime). */
export class ReducingStateHandle<T> implements ReducingState<T> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: ReducingStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  async get(): Promise<T | undefined> {
    const stored = await this.handler.submit(StateRequestType.Get, this.address);
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }

  async add(value: T): Promise<void> {
    encodeWith(this.descriptor.codec, value, this); // refuse a bad input before reading
    const current = await this.get();
    const next = current === undefined ? value : this.descriptor.reduce(current, value);
    await this.handler.submit(StateRequestType.Put, this.address, encodeWith(this.descriptor.codec, next, this));
  }

  async clear(): Promise<void> {
    await this.handler.submit(StateRequestType.Put, this.address, undefined);
  }
}
