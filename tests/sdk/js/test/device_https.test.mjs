// The device side of HTTPS with azure-iot-device-http: telemetry (read back with
// @azure/event-hubs) and cloud-to-device messages (it polls GET
// /devices/{id}/messages/devicebound), settled with complete, reject and abandon while
// azure-iothub sends them over AMQP and reads the feedback.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { EventHubConsumerClient, earliestEventPosition } from "@azure/event-hubs";
import deviceHttp from "azure-iot-device-http";
import {
  createDevice, deviceSdk, eventHubConnectionString, feedbackFor, iothub,
  serviceConnectionString, uniqueId, waitFor,
} from "./hub.mjs";

test("telemetry over HTTPS is read back with its properties", async () => {
  const device = await createDevice("js-tele-http");
  const client = deviceSdk.Client.fromConnectionString(device.connectionString, deviceHttp.Http);
  await client.open();
  const msg = new deviceSdk.Message(JSON.stringify({ temperature: 30 }));
  msg.messageId = `${device.deviceId}-http`;
  msg.correlationId = "corr-http";
  msg.properties.add("alert", "high temp");
  await client.sendEvent(msg);
  await client.close();

  const consumer = new EventHubConsumerClient("$Default", eventHubConnectionString);
  let subscription;
  try {
    const event = await waitFor(`the event from ${device.deviceId}`, (done) => {
      subscription = consumer.subscribe({
        processEvents: async (batch) => {
          const mine = batch.find(
            (e) => e.systemProperties?.["iothub-connection-device-id"] === device.deviceId);
          if (mine) done(mine);
        },
        processError: async (err) => console.error("event hubs error:", err.message),
      }, { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1 });
    });
    assert.deepEqual(event.body, { temperature: 30 });
    assert.equal(event.messageId, `${device.deviceId}-http`);
    assert.equal(event.correlationId, "corr-http");
    assert.equal(event.properties.alert, "high temp");
  } finally {
    await subscription?.close();
    await consumer.close();
  }
});

describe("C2D over HTTPS", () => {
  let service;
  before(async () => {
    service = iothub.Client.fromConnectionString(serviceConnectionString);
    await service.open();
  });
  after(() => service?.close());

  /** A device on HTTPS polling every second; `onMessage` settles each message. */
  async function httpDevice(prefix, onMessage) {
    const device = await createDevice(prefix);
    const client = deviceSdk.Client.fromConnectionString(device.connectionString, deviceHttp.Http);
    await client.open();
    client.on("message", (msg) => onMessage(client, msg));
    return { ...device, client };
  }

  function c2d(body, ack = "full") {
    const message = new deviceSdk.Message(body);
    message.messageId = uniqueId("mid");
    message.correlationId = "corr-1";
    message.ack = ack;
    message.properties.add("color", "blue");
    return message;
  }

  test("a completed message carries its properties and gives Success feedback", async () => {
    let received;
    const got = new Promise((resolve) => { received = resolve; });
    const device = await httpDevice("js-http-c2d", (client, msg) => {
      client.complete(msg, () => received(msg));
    });
    try {
      const feedback = feedbackFor(service, device.deviceId);
      const message = c2d("hello over https");
      await service.send(device.deviceId, message);
      const msg = await got;
      assert.equal(msg.getData().toString(), "hello over https");
      assert.equal(msg.messageId, message.messageId);
      assert.equal(msg.correlationId, "corr-1");
      assert.equal(msg.to, `/devices/${device.deviceId}/messages/devicebound`);
      assert.equal(msg.properties.getValue("iothub-app-color"), "blue");
      assert.ok(msg.lockToken);
      const record = await feedback;
      assert.equal(record.originalMessageId, message.messageId);
      assert.equal(record.statusCode, "Success");
    } finally {
      await device.client.close();
    }
  });

  test("a rejected message gives Rejected feedback", async () => {
    const device = await httpDevice("js-http-rej", (client, msg) => client.reject(msg, () => {}));
    try {
      const feedback = feedbackFor(service, device.deviceId);
      const message = c2d("no thanks", "negative");
      await service.send(device.deviceId, message);
      const record = await feedback;
      assert.equal(record.originalMessageId, message.messageId);
      assert.equal(record.statusCode, "Rejected");
    } finally {
      await device.client.close();
    }
  });

  test("an abandoned message comes back until it is completed", async () => {
    const seen = [];
    let finish;
    const finished = waitFor("the abandoned message to come back", (done) => { finish = done; });
    const device = await httpDevice("js-http-ab", (client, msg) => {
      seen.push(msg.lockToken);
      if (seen.length === 1) client.abandon(msg, () => {});
      else client.complete(msg, () => finish());
    });
    try {
      await service.send(device.deviceId, c2d("again", "none"));
      await finished;
      assert.equal(seen.length, 2);
      assert.notEqual(seen[0], seen[1], "each receive has its own lock token");
    } finally {
      await device.client.close();
    }
  });
});
