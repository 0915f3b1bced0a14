import type { AggregatingState, AggregatingStateDescriptor, KeyScope, StateAddress, StateRequestHandler } from "../contracts.ts";
import { StateRequestType } from "../contracts.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";

/** Stores the accumulator (validated by the accumulator codec); `get` returns `getResult(accumulator)`. */
export class AggregatingStateHandle<IN, ACC, OUT> implements AggregatingState<IN, OUT> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: AggregatingStateDescriptor<IN, ACC, OUT>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  async get(): Promise<OUT | undefined> {
    const acc = await this.accumulator();
    return acc === undefined ? undefined : this.descriptor.aggregate.getResult(acc);
  }

  async add(value: IN): Promise<void> {
    const fn = this.descriptor.aggregate;
    const acc = fn.add(value, (await this.accumulator()) ?? fn.createAccumulator());
    await this.handler.submit(StateRequestType.Put, this.address, encodeWith(this.descriptor.codec, acc, this, "accumulator"));
  }

  async clear(): Promise<void> {
    await this.handler.submit(StateRequestType.Put, this.address, undefined);
  }

  private async accumulator(): Promise<ACC | undefined> {
    const stored = await this.handler.submit(StateRequestType.Get, this.address);
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this, "accumulator");
  }
}
