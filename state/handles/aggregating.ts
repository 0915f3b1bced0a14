import type { AggregatingState, AggregatingStateDescriptor, KeyScope, GetRequest, StateAddress, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { read, readModifyWrite, written } from "./submit.ts";

/** Stores the accumulator (validated by the accumulator codec); `get` returns `getResult(accumulator)`. */
export class AggregatingStateHandle<IN, ACC, OUT> implements AggregatingState<IN, OUT> {
  private readonly address: StateAddress;
  /** Built once: every read of this handle is the same request. */
  private readonly getRequest: GetRequest;
  readonly state: string;

  constructor(private readonly descriptor: AggregatingStateDescriptor<IN, ACC, OUT>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
    this.getRequest = stateRequest.get(this.address);
  }

  get(): Promise<OUT | undefined> {
    return read(this.handler, this.getRequest, (stored) => {
      const acc = this.accumulator(stored);
      return acc === undefined ? undefined : this.descriptor.aggregate.getResult(acc);
    });
  }

  add(value: IN): Promise<void> {
    const fn = this.descriptor.aggregate;
    return readModifyWrite(this.handler, this.getRequest, (stored) =>
      encodeWith(this.descriptor.codec, fn.add(value, this.accumulator(stored) ?? fn.createAccumulator()), this, "accumulator"));
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  private accumulator(stored: unknown): ACC | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this, "accumulator");
  }
}
