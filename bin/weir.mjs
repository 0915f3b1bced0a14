#!/usr/bin/env node
// The `weir` command. Jobs are TypeScript modules: tsx's loader lets them run with no build step.
import { register } from "tsx/esm/api";

register();
await import("../runtime/cli/main.ts");
