// azure-iot-device-mqtt with an X.509 certificate: a self-signed device, registered by
// thumbprint through azure-iothub, connects with `x509=true` and setOptions({cert, key}),
// sends telemetry; a certificate the identity does not name is refused.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import deviceMqtt from "azure-iot-device-mqtt";

import { selfSigned } from "./certs.mjs";
import { deviceSdk, hostName, registry, uniqueId } from "./hub.mjs";

async function createSelfSigned(deviceId, primaryThumbprint, secondaryThumbprint) {
  await registry.create({
    deviceId,
    status: "enabled",
    authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint, secondaryThumbprint } },
  });
}

async function x509Client(deviceId, { cert, key }) {
  const client = deviceSdk.Client.fromConnectionString(
    `HostName=${hostName};DeviceId=${deviceId};x509=true`, deviceMqtt.Mqtt);
  await client.setOptions({ cert, key });
  return client;
}

describe("X.509 devices over MQTT", () => {
  const created = [];
  after(async () => {
    for (const id of created) await registry.delete(id).catch(() => {});
  });

  test("a self-signed device connects by thumbprint and sends telemetry", async () => {
    const deviceId = uniqueId("js-x509");
    const cert = selfSigned(deviceId);
    await createSelfSigned(deviceId, cert.sha256.toLowerCase(), null);
    created.push(deviceId);
    const client = await x509Client(deviceId, cert);
    try {
      await client.open();
      await client.sendEvent(new deviceSdk.Message(JSON.stringify({ auth: "x509" })));
      const { responseBody: device } = await registry.get(deviceId);
      assert.equal(device.authentication.type, "selfSigned");
      assert.equal(device.connectionState, "Connected");
    } finally {
      await client.close();
    }
  });

  test("a certificate the identity does not name is refused", async () => {
    const deviceId = uniqueId("js-x509no");
    const registered = selfSigned(`${deviceId}-a`);
    const other = selfSigned(`${deviceId}-b`);
    await createSelfSigned(deviceId, registered.sha1, registered.sha256);
    created.push(deviceId);
    const client = await x509Client(deviceId, other);
    try {
      // CONNACK 5 (not authorized), which the SDK reports as UnauthorizedError.
      await assert.rejects(client.open(), (err) => {
        assert.equal(err.constructor.name, "UnauthorizedError", String(err));
        return true;
      });
    } finally {
      await client.close().catch(() => {});
    }
  });
});
