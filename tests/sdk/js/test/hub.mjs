// What the tests share: the running hub (from run.mjs) and small helpers around
// the official SDKs. Nothing here changes how an SDK talks to the hub.

import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import iothub from "azure-iothub";
import deviceSdk from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";

const hubJson = process.env.HUBTUI_HUB_JSON;
if (!hubJson) throw new Error("HUBTUI_HUB_JSON is not set: run the suite with `node run.mjs`");

export const info = JSON.parse(readFileSync(hubJson, "utf8"));
export const hostName = info.hostName;

export const serviceConnectionString = info.serviceConnectionString;

export const eventHubConnectionString = info.eventHubCompatibleConnectionString;

export const registry = iothub.Registry.fromConnectionString(serviceConnectionString);

export const uniqueId = (prefix) => `${prefix}-${randomUUID().slice(0, 10)}`;
const newKey = () => randomBytes(32).toString("base64");

/** Creates a SAS device through the registry and returns its id and connection string. */
export async function createDevice(prefix) {
  const deviceId = uniqueId(prefix);
  const primaryKey = newKey();
  await registry.create({
    deviceId,
    status: "enabled",
    authentication: { symmetricKey: { primaryKey, secondaryKey: newKey() } },
  });
  return {
    deviceId,
    connectionString: `HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${primaryKey}`,
  };
}

/** A device client on MQTT (or MQTT over WebSockets), opened. */
export async function openDevice(connectionString, { websockets = false } = {}) {
  const transport = websockets ? deviceMqtt.MqttWs : deviceMqtt.Mqtt;
  const client = deviceSdk.Client.fromConnectionString(connectionString, transport);
  await client.open();
  return client;
}

/** Resolves with the first value `register(resolve)` hands over, or fails after `ms`. */
export function waitFor(what, register, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * Resolves with the first feedback record about `deviceId` within `ms` (batches are
 * completed as they come).
 */
export async function feedbackFor(service, deviceId, ms = 20_000) {
  const { result: receiver } = await service.getFeedbackReceiver();
  return waitFor(`feedback for ${deviceId}`, (done) =>
    receiver.on("message", (msg) => {
      const records = JSON.parse(msg.getData().toString());
      receiver.complete(msg, () => {});
      const mine = records.find((r) => r.deviceId === deviceId);
      if (mine) done(mine);
    }), ms);
}

/**
 * Invokes a method; `target` is (deviceId, params) or (deviceId, moduleId, params).
 * onDeviceMethod subscribes in the background, and until the subscription lands the
 * hub answers 404 DeviceNotOnline (as Azure does): retry for a while, as a user would.
 */
export async function invokeOnceSubscribed(service, ...target) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await service.invokeDeviceMethod(...target);
    } catch (e) {
      if (e.response?.statusCode !== 404 || attempt >= 40) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export { deviceSdk, iothub };

/** The blob store's account from hub.json: accountName, accountKey, blobEndpoint, connectionString. */
export const storage = info.storage;
