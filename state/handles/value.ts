import type { KeyScope, GetRequest, StateAddress, StateRequestHandler, ValueState, ValueStateDescriptor } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { read, written } from "./submit.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";

export class ValueStateHandle<T> implements ValueState<T> {
  /**
   * Built once per handle (a handle serves every record of its key), bound rather than an arrow field: the
   * tsx loader names arrow fields (esbuild's keepNames), a defineProperty per handle (~0.3 KB each).
   */
  private readonly decoder = this.decode.bind(this);
  private readonly address: StateAddress;
  /** Built once: every read of this handle is the same request. */
  private readonly getRequest: GetRequest;
  readonly state: string;

  constructor(private readonly descriptor: ValueStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
    this.getRequest = stateRequest.get(this.address);
  }

  value(): Promise<T | undefined> {
    return read(this.handler, this.getRequest, this.decoder);
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

  private decode(stored: unknown): T | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }
}
