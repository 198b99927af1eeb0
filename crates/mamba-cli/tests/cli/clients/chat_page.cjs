// The chat page of `mamba-llm serve` in headless Chromium (Debian's), driven by playwright-core.
// Run by crates/mamba-cli/tests/cli/serve.rs:  node chat_page.cjs BASE_URL
// env PLAYWRIGHT_CORE: the playwright-core package folder; CHROMIUM: the browser binary.
// The server in front of the mock answers "page answer ..." word by word, streams slowly for
// "slow", and fails with HTTP 422 for "fail".
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const fs = require("fs");
const os = require("os");
const path = require("path");

const base = process.argv[2];
const problems = [];

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "mamba-chat-page-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await context.newPage();
    // The browser itself logs the 422 this test provokes; any other error is a problem.
    const provoked = "the server responded with a status of 422";
    page.on("console", (msg) => {
      if (msg.type() === "error" && !msg.text().includes(provoked)) problems.push("console error: " + msg.text());
    });
    page.on("pageerror", (err) => problems.push("page error: " + err.message));
    page.setDefaultTimeout(15000);

    await page.goto(base + "/");
    await page.waitForFunction(() => document.querySelectorAll("#model option").length > 0);
    const model = await page.$eval("#model", (s) => s.value);
    if (model !== "mock-model") throw new Error("model list: " + model);
    console.log("ok page loaded, models listed");

    // A streamed answer, rendered as it arrives.
    await page.fill("#system", "You are terse.");
    await page.fill("#max_tokens", "50");
    await page.fill("#input", "page answer one two three");
    await page.click("#send");
    await page.waitForFunction(() => {
      const all = document.querySelectorAll(".assistant .text");
      return all.length === 1 && all[0].textContent === "page answer one two three";
    });
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("done"));
    console.log("ok streamed answer shown: " + (await page.textContent("#status")));

    // Reasoning shown folded.
    await page.fill("#input", "think first");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelectorAll("details.reasoning").length === 1
      && document.querySelector("#status").textContent.startsWith("done"));
    const open = await page.$eval("details.reasoning", (d) => d.open);
    if (open) throw new Error("reasoning is not folded");
    console.log("ok reasoning folded");

    // An error, shown as the server gave it.
    await page.fill("#input", "please fail");
    await page.click("#send");
    await page.waitForSelector(".msg.error");
    const error = await page.textContent(".msg.error .text");
    if (!error.includes("temperature must be at most 2") || !error.includes("422")) throw new Error("error shown: " + error);
    console.log("ok error shown: " + error);

    // Stop cancels a slow stream.
    await page.fill("#input", "slow");
    await page.click("#send");
    await page.waitForFunction(() => {
      const all = document.querySelectorAll(".assistant .text");
      return all.length > 0 && all[all.length - 1].textContent.length > 0 && document.querySelector("#status").textContent === "streaming…";
    });
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "stopped");
    const sendEnabled = await page.$eval("#send", (b) => !b.disabled);
    if (!sendEnabled) throw new Error("send stays disabled after stop");
    console.log("ok stop cancelled the stream");
    // Let the server see the closed connection before the test looks at the mock.
    await page.waitForTimeout(300);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("all page checks passed, no console errors");
}

main().catch((e) => { console.error("FAILED: " + (e && e.stack || e)); process.exit(1); });
