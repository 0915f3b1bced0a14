import type { KeyScope, ReducingState, ReducingStateDescriptor, GetRequest, StateAddress, StateRequestHandler } from "../contracts.ts";
import { stateRequest } from "../requests.ts";
import { baseAddress } from "./address.ts";
import { decodeWith, encodeWith } from "./codec.ts";
import { read, readModifyWrite, written } from "./submit.ts";

/** Keeps one value, folded with `reduce` on every add (read, reduce, write: same-key records are serialized by the runtime). */
export class ReducingStateHandle<T> implements ReducingState<T> {
  /**
   * Built once per handle (a handle serves every record of its key), bound rather than an arrow field: the
   * tsx loader names arrow fields (esbuild's keepNames), a defineProperty per handle (~0.3 KB each).
   */
  private readonly decoder = this.decode.bind(this);
  private readonly address: StateAddress;
  /** Built once: every read of this handle is the same request. */
  private readonly getRequest: GetRequest;
  readonly state: string;

  constructor(private readonly descriptor: ReducingStateDescriptor<T>, readonly scope: KeyScope, private readonly handler: StateRequestHandler) {
    this.state = descriptor.name;
    this.address = baseAddress(descriptor.name, scope);
    this.getRequest = stateRequest.get(this.address);
  }

  get(): Promise<T | undefined> {
    return read(this.handler, this.getRequest, this.decoder);
  }

  add(value: T): Promise<void> {
    try {
      encodeWith(this.descriptor.codec, value, this); // refuse a bad input before reading
    } catch (e) {
      return Promise.reject(e);
    }
    return readModifyWrite(this.handler, this.getRequest, (stored) => {
      const current = this.decode(stored);
      return encodeWith(this.descriptor.codec, current === undefined ? value : this.descriptor.reduce(current, value), this);
    });
  }

  clear(): Promise<void> {
    return written(this.handler, stateRequest.put(this.address, undefined));
  }

  private decode(stored: unknown): T | undefined {
    return stored === undefined ? undefined : decodeWith(this.descriptor.codec, stored, this);
  }
}
