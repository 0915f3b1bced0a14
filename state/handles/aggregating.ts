import type { AggregatingState, AggregatingStateDescriptor, KeyScope, StateAddress, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { read, readModifyWrite, written, type StoredValueDecoder } from "./submit.ts";

/** Stores the accumulator (validated by the accumulator codec); `get` returns `getResult(accumulator)`. */
export class AggregatingStateHandle<IN, ACC, OUT> implements StoredValueDecoder<OUT | undefined>, AggregatingState<IN, OUT> {
  private readonly address: StateAddress;
  readonly state: string;

  constructor(private readonly descriptor: AggregatingStateDescriptor<IN, ACC, OUT>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
  }

  get(): Promise<OUT | undefined> {
    return read(this.handler, stateRequest.get(this.address), this);
  }

  /** The result of the stored accumulator, as `get` answers it (StoredValueDecoder). */
  decodeStored(stored: unknown): OUT | undefined {
    const acc = this.accumulator(stored);
    return acc === undefined ? undefined : this.descriptor.aggregate.getResult(acc);
  }

  add(value: IN): Promise<void> {
    const fn = this.descriptor.aggregate;
    return readModifyWrite(this.handler, stateRequest.get(this.address), (stored) =>
      encodeWith(this.descriptor.codec, fn.add(value, this.accumulator(stored) ?? fn.createAccumulator()), this, "accumulator"));
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  private accumulator(stored: unknown): ACC | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this, "accumulator");
  }
}
