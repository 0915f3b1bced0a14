import { NOT_APPLIED, type KeyedStateBackend, type StateAddress, type StateRequestHandler, type StateRequestType } from "../contracts.ts";

/**
 * Sync mode: every request goes to the backend at once, as a batch of one. Uses the backend's `executeOne`
 * fast path when it has one (the heap backend answers synchronously: no request object, no array).
 */
export class DirectStateRequestHandler implements StateRequestHandler {
  private readonly one: KeyedStateBackend["executeOne"];

  constructor(private readonly backend: KeyedStateBackend) {
    this.one = backend.executeOne?.bind(backend);
  }

  submitNow(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    return this.one ? this.one(type, address, value, cursor, limit) : NOT_APPLIED;
  }

  submit(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): Promise<unknown> {
    if (this.one) {
      try {
        const result = this.one(type, address, value, cursor, limit);
        return result instanceof Promise ? result : Promise.resolve(result);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      this.backend.executeBatch([{ type, address, value, cursor, limit, resolve, reject }]).catch(reject);
    });
  }
}
