// Opens a page of the project's from a file:// URL in headless Chromium (Debian's, through
// playwright-core) and checks it the way a person would see it: it loads with no console
// error and no uncaught exception, requests nothing but its own file, and shows the given
// texts. Saves a full-page screenshot.
//
//   node scripts/check-page.mjs PAGE.html --screenshot OUT.png [--expect TEXT]... [--expect-fail ID]...
//
// --expect-fail ID: the findings table has a row for finding ID whose status reads FAIL.
// Prints a JSON report; exits 1 on any failed check.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const require = createRequire(process.env.PLAYWRIGHT_DIR
  ? path.join(path.resolve(process.env.PLAYWRIGHT_DIR), "node_modules/")
  : import.meta.url);
const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const page_path = args.shift();
const option = (name) => {
  const out = [];
  for (let i = 0; i < args.length; i++) if (args[i] === name) out.push(args[i + 1]);
  return out;
};
const screenshot = option("--screenshot")[0];
const expect = option("--expect");
const expect_fail = option("--expect-fail");
if (!page_path || !screenshot) {
  console.error("usage: check-page.mjs PAGE.html --screenshot OUT.png [--expect TEXT] [--expect-fail ID]");
  process.exit(2);
}

const url = pathToFileURL(path.resolve(page_path)).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const problems = [];
const requests = [];
const console_messages = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    console_messages.push(`${m.type()}: ${m.text()}`);
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught exception: ${e.message}`));
  page.on("request", (r) => {
    requests.push(r.url());
    if (r.url() !== url) problems.push(`the page requested ${r.url()}`);
  });
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response || !response.ok()) problems.push(`the page did not load: ${response && response.status()}`);
  const text = await page.innerText("body");
  for (const t of expect) if (!text.includes(t)) problems.push(`the page does not show ${JSON.stringify(t)}`);
  for (const id of expect_fail) {
    const row = page.locator(`tr[data-finding="${id}"]`);
    if ((await row.count()) !== 1) {
      problems.push(`no findings row for ${id}`);
      continue;
    }
    if (!(await row.isVisible())) problems.push(`the row of ${id} is not visible`);
    const status = (await row.locator(".status").innerText()).trim();
    if (status !== "FAIL") problems.push(`${id} shows ${status}, expected FAIL`);
    const color = await row.locator(".status").evaluate((e) => getComputedStyle(e).backgroundColor);
    if (color !== "rgb(207, 34, 46)") problems.push(`${id}'s FAIL is not drawn red (${color})`);
  }
  const svgs = await page.locator("svg").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ url, requests, console: console_messages, svgs, screenshot, problems }, null, 2));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
