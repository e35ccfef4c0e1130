// IoT Plug and Play digital twins: azure-iothub's DigitalTwinClient against a device that
// announces a model id (azure-iot-device's `modelId` option, sent in the MQTT username).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import deviceMqtt from "azure-iot-device-mqtt";
import {
  createDevice, deviceSdk, iothub, serviceConnectionString, waitFor,
} from "./hub.mjs";

const MODEL = "dtmi:com:example:TemperatureController;1";

describe("digital twins", () => {
  let device;
  let client;
  let digitalTwins;
  before(async () => {
    device = await createDevice("js-pnp");
    client = deviceSdk.Client.fromConnectionString(device.connectionString, deviceMqtt.Mqtt);
    await client.setOptions({ modelId: MODEL });
    await client.open();
    digitalTwins = new iothub.DigitalTwinClient(
      new iothub.IoTHubTokenCredentials(serviceConnectionString));
  });
  after(() => client?.close());

  test("the digital twin shows the model, reported values and desired updates", async () => {
    const twin = await client.getTwin();
    await new Promise((resolve, reject) =>
      twin.properties.reported.update(
        { serialNumber: "sn-1", thermostat1: { __t: "c", maxTempSinceLastReboot: 25.3 } },
        (e) => (e ? reject(e) : resolve())));

    const dt = await digitalTwins.getDigitalTwin(device.deviceId);
    assert.equal(dt.$dtId, device.deviceId);
    assert.equal(dt.$metadata.$model, MODEL);
    assert.equal(dt.serialNumber, "sn-1");
    assert.equal(dt.thermostat1.maxTempSinceLastReboot, 25.3);
    const etag = dt._response.headers.get("etag");
    assert.ok(etag, "the read carries an ETag");

    const desired = waitFor("a desired patch", (done) =>
      twin.on("properties.desired", (patch) => {
        if (patch.thermostat1?.targetTemperature === 21.4) done(patch);
      }));
    // 202 without a body: the SDK resolves with nothing.
    await digitalTwins.updateDigitalTwin(
      device.deviceId,
      [{ op: "add", path: "/thermostat1/targetTemperature", value: 21.4 }],
      etag,
    );
    const patch = await desired;
    const after = await digitalTwins.getDigitalTwin(device.deviceId);
    assert.notEqual(after._response.headers.get("etag"), etag);
    assert.deepEqual(after.thermostat1.$metadata.targetTemperature, {
      desiredValue: 21.4, desiredVersion: patch.$version,
    });

    // The etag of the first read is stale now.
    await assert.rejects(
      digitalTwins.updateDigitalTwin(
        device.deviceId, [{ op: "remove", path: "/thermostat1/targetTemperature" }], etag),
      (e) => e.statusCode === 412,
    );
  });

  test("root and component commands reach the device as direct methods", async () => {
    for (const name of ["reboot", "thermostat1*getMaxMinReport"]) {
      client.onDeviceMethod(name, (request, response) => {
        response.send(201, { name: request.methodName, payload: request.payload }, () => {});
      });
    }
    // onDeviceMethod subscribes in the background: until it lands the hub answers 404.
    const once = async (call) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await call();
        } catch (e) {
          if (e.statusCode !== 404 || attempt >= 40) throw e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    };
    const root = await once(() => digitalTwins.invokeCommand(
      device.deviceId, "reboot", { delay: 1 }, { responseTimeoutInSeconds: 10 }));
    assert.deepEqual(root._response.parsedBody, { name: "reboot", payload: { delay: 1 } });
    assert.equal(root.xMsCommandStatuscode, 201);
    assert.ok(root.xMsRequestId);

    const component = await digitalTwins.invokeComponentCommand(
      device.deviceId, "thermostat1", "getMaxMinReport", "since-boot",
      { connectTimeoutInSeconds: 5, responseTimeoutInSeconds: 10 });
    assert.deepEqual(component._response.parsedBody,
      { name: "thermostat1*getMaxMinReport", payload: "since-boot" });
    assert.equal(component.xMsCommandStatuscode, 201);
  });
});
