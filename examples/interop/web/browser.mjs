// Runs the shared gRPC-Web interop cases (cases.js, bundled into dist/page.js) in headless
// Chromium: opens PAGE_URL (dist/index.html served over HTTP), calls the page's
// window.runInteropCases(GRPC_BASE_URL, cases) and prints the results.
//
// Usage: node browser.mjs PAGE_URL GRPC_BASE_URL [case,case,...]
//   $CHROMIUM names the browser (default /usr/bin/chromium).
// Prints "NAME: passed [(note)]" or "NAME: FAILED: why" per case, then "N passed, M failed"; exits 1
// when a case failed, on bad usage, on any error, or when the whole run takes over 60 s. Page
// console errors and uncaught page errors go to stderr.
import puppeteer from "puppeteer-core";
import { report } from "./cases.js";

const RUN_TIMEOUT_MS = 60_000;

const [pageUrl, grpcBaseUrl, caseList] = process.argv.slice(2);
if (!pageUrl || !grpcBaseUrl || process.argv.length > 5) {
  console.error("usage: node browser.mjs PAGE_URL GRPC_BASE_URL [case,case,...]");
  process.exit(1);
}
const cases = caseList ? caseList.split(",").filter(Boolean) : [];

let browser;
let timer;
let failed = 1;
try {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors", "--disable-dev-shm-usage"],
  });
  const run = async () => {
    const page = await browser.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") console.error(`page console: ${msg.text()}`);
    });
    page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
    await page.goto(pageUrl, { waitUntil: "load" });
    await page.waitForFunction(() => typeof window.runInteropCases === "function", { timeout: 10_000 });
    return page.evaluate((url, names) => window.runInteropCases(url, names), grpcBaseUrl, cases);
  };
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${RUN_TIMEOUT_MS / 1000} s`)), RUN_TIMEOUT_MS);
  });
  failed = report(await Promise.race([run(), timeout]));
} catch (e) {
  console.error(`error: ${e instanceof Error ? e.message : e}`);
  failed = 1;
} finally {
  clearTimeout(timer);
  await browser?.close().catch(() => {});
}
process.exit(failed ? 1 : 0);
