// Module identities: azure-iothub creates them and calls their methods;
// azure-iot-device's ModuleClient (MQTT) connects as the module.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import deviceMqtt from "azure-iot-device-mqtt";

import {
  createDevice, deviceSdk, hostName, feedbackFor, invokeOnceSubscribed, iothub, registry,
  serviceConnectionString, waitFor,
} from "./hub.mjs";

test("a module connects, keeps its own twin and answers its own methods", async () => {
  const { deviceId } = await createDevice("js-mod");
  const moduleId = "sensor";
  const key = randomBytes(32).toString("base64");
  await registry.addModule({
    deviceId,
    moduleId,
    authentication: { type: "sas", symmetricKey: { primaryKey: key, secondaryKey: key } },
  });
  const { responseBody: modules } = await registry.getModulesOnDevice(deviceId);
  assert.deepEqual(modules.map((m) => m.moduleId), [moduleId]);

  const client = deviceSdk.ModuleClient.fromConnectionString(
    `HostName=${hostName};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`,
    deviceMqtt.Mqtt,
  );
  await client.open();
  const service = iothub.Client.fromConnectionString(serviceConnectionString);
  try {
    const twin = await client.getTwin();
    const desired = waitFor("the module's desired patch", (done) =>
      twin.on("properties.desired", (patch) => {
        if (patch.rate === 2) done(patch);
      }));
    const { responseBody: moduleTwin } = await registry.getModuleTwin(deviceId, moduleId);
    assert.equal(moduleTwin.moduleId, moduleId);
    await registry.updateModuleTwin(deviceId, moduleId, { properties: { desired: { rate: 2 } } },
      moduleTwin.etag);
    await desired;

    await new Promise((resolve, reject) =>
      twin.properties.reported.update({ rate: 2 }, (e) => (e ? reject(e) : resolve())));
    const { responseBody: after } = await registry.getModuleTwin(deviceId, moduleId);
    assert.equal(after.properties.reported.rate, 2);
    const { responseBody: deviceTwin } = await registry.getTwin(deviceId);
    assert.equal(deviceTwin.properties.reported.rate, undefined, "the device twin is separate");

    client.onMethod("calibrate", (request, response) => {
      response.send(200, { module: moduleId, got: request.payload }, () => {});
    });
    const { result } = await invokeOnceSubscribed(service, deviceId, moduleId, {
      methodName: "calibrate",
      payload: { offset: 1.5 },
      responseTimeoutInSeconds: 10,
    });
    assert.equal(result.status, 200);
    assert.deepEqual(result.payload, { module: moduleId, got: { offset: 1.5 } });
  } finally {
    await client.close();
    await service.close();
  }
});

test("MQTT devices cannot reject; a completed negative-ack message sends no feedback", async () => {
  const device = await createDevice("js-reject");
  const client = deviceSdk.Client.fromConnectionString(device.connectionString, deviceMqtt.Mqtt);
  await client.open();
  const service = iothub.Client.fromConnectionString(serviceConnectionString);
  try {
    await service.open();
    const received = waitFor("the C2D message", (done) => client.on("message", done));
    const message = new deviceSdk.Message("reject me");
    message.messageId = "to-reject";
    message.ack = "negative";
    await service.send(device.deviceId, message);
    const got = await received;
    // Over MQTT a device cannot reject: azure-iot-device-mqtt says so.
    await assert.rejects(client.reject(got), /not supported|NotImplemented/i);
    await client.complete(got);
    // Completed, so a negative-only ack produces no record for this message.
    await assert.rejects(feedbackFor(service, device.deviceId, 1500), /timed out/);
  } finally {
    await client.close();
    await service.close();
  }
});
