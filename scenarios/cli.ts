// Placeholder until the scenario runner lands (being written now): fails loudly rather than pretending.
import { ErrorCode, WeirError } from "../runtime/errors.ts";

export async function scenarioCommand(_paths: string[], _flags: { verbose?: boolean }): Promise<number> {
  throw new WeirError(ErrorCode.Scenario, "weir scenario: the scenario runner is not implemented yet");
}
