// Starts `hubtui hub` on the ports the JavaScript SDKs dial (MQTT 8883, AMQP 5671,
// HTTPS 443), waits for hub.json, then runs the tests in test/ with node's test
// runner. The hub's CA reaches every SDK the way a user would give it to them:
// NODE_EXTRA_CA_CERTS, which node reads only at start-up, hence this runner.
//
// The ports are fixed because the SDKs hard-code them (443 for REST and every
// WebSocket transport), so this needs root or CAP_NET_BIND_SERVICE.
//
// Usage: node run.mjs [test files...]. Environment: HUBTUI_BIN (default
// target/debug/hubtui), HUBTUI_SDK_START_TIMEOUT (seconds, default 60),
// HUBTUI_SDK_KEEP_DATA=1 (keep the hub's data dir and log).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const binary = resolve(root, process.env.HUBTUI_BIN ?? "target/debug/hubtui");
const startTimeout = Number(process.env.HUBTUI_SDK_START_TIMEOUT ?? 60) * 1000;

if (!existsSync(binary)) {
  console.error(`hubtui binary not found at ${binary}: build it (cargo build) or set HUBTUI_BIN`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "hubtui-js-sdk-"));
const dataDir = join(work, "data");
const logPath = join(work, "hub.log");
const hub = spawn(
  binary,
  ["hub", "--data-dir", dataDir, "--mqtt-port", "8883", "--amqp-port", "5671",
    "--https-port", "443"],
  { stdio: ["ignore", openSync(logPath, "w"), openSync(logPath, "a")] },
);
let hubExit = null;
hub.on("exit", (code, signal) => { hubExit = code ?? signal; });

const logTail = () => {
  try {
    return readFileSync(logPath, "utf8").split("\n").slice(-60).join("\n");
  } catch {
    return "(no log)";
  }
};

async function stop() {
  if (hubExit === null) {
    const exited = new Promise((r) => hub.once("exit", r));
    hub.kill("SIGTERM");
    const timer = setTimeout(() => hub.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (process.env.HUBTUI_SDK_KEEP_DATA === "1") console.error(`hub data and log kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

async function waitForHubJson() {
  const path = join(dataDir, "hub.json");
  const deadline = Date.now() + startTimeout;
  while (Date.now() < deadline) {
    if (hubExit !== null) throw new Error(`the hub exited (${hubExit}) before writing hub.json:\n${logTail()}`);
    if (existsSync(path)) {
      try {
        return [path, JSON.parse(readFileSync(path, "utf8"))];
      } catch {
        // hub.json is written atomically; a parse error means a partial read race
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`hub.json did not appear in ${dataDir} within ${startTimeout / 1000}s:\n${logTail()}`);
}

let code = 1;
try {
  const [hubJson, info] = await waitForHubJson();
  const ca = isAbsolute(info.caCertificate) ? info.caCertificate : join(dataDir, info.caCertificate);
  const files = readdirSync(join(here, "test"))
    .filter((f) => f.endsWith(".test.mjs"))
    .map((f) => join(here, "test", f));
  const only = process.argv.slice(2);
  const tests = spawn(
    process.execPath,
    ["--test", "--test-concurrency=1", "--test-timeout=180000", "--test-force-exit", "--test-reporter=spec",
      ...(only.length ? only.map((f) => resolve(f)) : files)],
    {
      stdio: "inherit",
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: ca,
        HUBTUI_HUB_JSON: hubJson,
      },
    },
  );
  code = await new Promise((r) => tests.on("exit", (c) => r(c ?? 1)));
  if (hubExit !== null) {
    console.error(`the hub exited (${hubExit}) during the suite:\n${logTail()}`);
    code = code || 1;
  } else if (code !== 0) {
    console.error(`hub log (last lines):\n${logTail()}`);
  }
} catch (e) {
  console.error(e.message);
} finally {
  await stop();
}
process.exit(code);
