// A real Chromium for the dashboard tests, bench and screenshot: Debian's package (scripts/bootstrap.sh
// installs it), driven by playwright-core. Never a browser download.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = process.env.WEIR_CHROMIUM ?? "/usr/bin/chromium";

/** The browser, or why there is none (only when Chromium is not installed). */
export async function launchChromium(): Promise<{ browser: Browser } | { skip: string }> {
  if (!existsSync(CHROMIUM)) return { skip: `no Chromium at ${CHROMIUM} (scripts/bootstrap.sh installs it: apt-get install -y chromium)` };
  return { browser: await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], timeout: 60_000 }) };
}

/** "20.4k" → 20400 (the dashboard's counts). */
export function parseCount(text: string | null): number {
  const m = /^\s*([\d.]+)\s*([kMG]?)\s*$/.exec(text ?? "");
  if (!m) return Number.NaN;
  return Number(m[1]) * ({ "": 1, k: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]!]!;
}
