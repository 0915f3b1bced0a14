// docs/dashboard.png: `weir demo` on a fresh nats-server, its dashboard in Chromium after ~12 s of
// traffic. Run: node --import tsx scripts/dashboard-screenshot.ts [out.png]
import { launchNatsServer } from "../runtime/internal.ts";
import { startWeir } from "../tests/helpers/cli.ts";
import { launchChromium } from "../tests/helpers/browser.ts";

const out = process.argv[2] ?? "docs/dashboard.png";
const server = await launchNatsServer();
const demo = startWeir(["demo", "--nats", server.url, "--duration", "60"]);
try {
  await demo.waitForStderr(/dashboard: http:\/\/\S+\//, 60_000);
  const url = /dashboard: (http:\/\/\S+\/)/.exec(demo.stderr())![1]!;
  const launched = await launchChromium();
  if ("skip" in launched) throw new Error(launched.skip);
  try {
    const page = await launched.browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
    await page.goto(url);
    await page.waitForSelector("#checkpoints tr[data-checkpoint]", { timeout: 60_000 });
    await page.waitForTimeout(12_000);
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out} (${url})`);
  } finally {
    await launched.browser.close();
  }
} finally {
  demo.child.kill("SIGKILL");
  await demo.exited;
  await server.stop();
}
