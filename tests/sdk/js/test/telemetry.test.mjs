// azure-iot-device-mqtt sends telemetry (MQTT on 8883 and MQTT over WebSockets on
// 443); @azure/event-hubs reads it back from the Event Hubs-compatible endpoint.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  EventHubConsumerClient, EventHubProducerClient, earliestEventPosition, latestEventPosition,
} from "@azure/event-hubs";
import WebSocket from "ws";

import { createDevice, deviceSdk, eventHubConnectionString, openDevice, waitFor } from "./hub.mjs";

describe("Event Hubs-compatible endpoint", () => {
  let consumer;
  before(() => {
    assert.ok(eventHubConnectionString, "hub.json has eventHubCompatibleConnectionString");
    consumer = new EventHubConsumerClient("$Default", eventHubConnectionString);
  });
  after(() => consumer?.close());

  test("describes the hub's entity and its partitions", async () => {
    const props = await consumer.getEventHubProperties();
    assert.match(eventHubConnectionString, new RegExp(`EntityPath=${props.name}(;|$)`));
    assert.ok(props.partitionIds.length >= 1);
    const p = await consumer.getPartitionProperties(props.partitionIds[0]);
    assert.equal(p.partitionId, props.partitionIds[0]);
    assert.equal(typeof p.lastEnqueuedSequenceNumber, "number");
  });

  /**
   * Reads every partition from the start until `n` events of `deviceId` arrived; each
   * event also carries the `partitionId` it came from.
   */
  async function readBack(deviceId, n, client = consumer) {
    const events = [];
    let subscription;
    try {
      await waitFor(`${n} events from ${deviceId}`, (done) => {
      subscription = client.subscribe(
        {
          processEvents: async (batch, context) => {
            for (const e of batch) {
              if (e.systemProperties?.["iothub-connection-device-id"] === deviceId) {
                events.push({ ...e, partitionId: context.partitionId });
              }
            }
            if (events.length >= n) done();
          },
          processError: async (err) => {
            // Surfaced in the assertion below if nothing arrives; log for the reader.
            console.error("event hubs error:", err.message);
          },
        },
        { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1 },
      );
    }, 30_000);
    } finally {
      await subscription?.close();
    }
    return events;
  }

  for (const websockets of [false, true]) {
    test(`telemetry over ${websockets ? "MQTT over WebSockets" : "MQTT"} is read back with its properties`, async () => {
      const device = await createDevice(websockets ? "js-tele-ws" : "js-tele");
      const client = await openDevice(device.connectionString, { websockets });
      try {
        for (let i = 0; i < 3; i++) {
          const msg = new deviceSdk.Message(JSON.stringify({ temperature: 20 + i }));
          msg.messageId = `${device.deviceId}-${i}`;
          msg.contentType = "application/json";
          msg.contentEncoding = "utf-8";
          msg.properties.add("alert", i === 2 ? "high temp" : "none");
          await client.sendEvent(msg);
        }
      } finally {
        await client.close();
      }
      const events = await readBack(device.deviceId, 3);
      assert.deepEqual(events.map((e) => e.body), [20, 21, 22].map((t) => ({ temperature: t })));
      const last = events[2];
      assert.equal(last.messageId, `${device.deviceId}-2`);
      assert.equal(last.contentType, "application/json");
      assert.equal(last.properties.alert, "high temp");
      assert.equal(last.systemProperties["iothub-message-source"], "Telemetry");
      assert.ok(last.systemProperties["iothub-enqueuedtime"]);
      assert.ok(last.enqueuedTimeUtc instanceof Date);
      const seqs = events.map((e) => e.sequenceNumber);
      assert.ok(seqs[0] < seqs[1] && seqs[1] < seqs[2], `in order: ${seqs}`);
      assert.equal(new Set(events.map((e) => e.partitionKey ?? "")).size, 1);
    });
  }

  test("a consumer over AMQP over WebSockets (443) reads the same events", async () => {
    const device = await createDevice("js-eh-ws");
    const client = await openDevice(device.connectionString);
    try {
      await client.sendEvent(new deviceSdk.Message("over websockets"));
    } finally {
      await client.close();
    }
    const wsConsumer = new EventHubConsumerClient("$Default", eventHubConnectionString, {
      webSocketOptions: { webSocket: WebSocket },
    });
    try {
      const [event] = await readBack(device.deviceId, 1, wsConsumer);
      assert.equal(Buffer.from(event.body).toString(), "over websockets");
    } finally {
      await wsConsumer.close();
    }
  });

  test("the built-in endpoint is read-only: a producer is refused as on Azure", async () => {
    const producer = new EventHubProducerClient(eventHubConnectionString, {
      retryOptions: { maxRetries: 0, timeoutInMs: 10_000 },
    });
    try {
      await assert.rejects(async () => {
        const batch = await producer.createBatch();
        batch.tryAdd({ body: "not allowed" });
        await producer.sendBatch(batch);
      }, /'Send' claim\(s\) are required/);
    } finally {
      await producer.close();
    }
  });

  test("trackLastEnqueuedEventProperties reports the partition's newest event", async () => {
    const device = await createDevice("js-metric");
    const client = await openDevice(device.connectionString);
    try {
      for (const body of ["m0", "m1", "m2"]) await client.sendEvent(new deviceSdk.Message(body));
    } finally {
      await client.close();
    }
    let last;
    let subscription;
    await waitFor("an event with runtime metrics", (done) => {
      subscription = consumer.subscribe(
        {
          processEvents: async (batch, context) => {
            const mine = batch.filter(
              (e) => e.systemProperties?.["iothub-connection-device-id"] === device.deviceId,
            );
            if (mine.length > 0) {
              last = { first: mine[0], props: context.lastEnqueuedEventProperties };
              done();
            }
          },
          processError: async () => {},
        },
        { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1,
          trackLastEnqueuedEventProperties: true },
      );
    }, 30_000);
    await subscription.close();
    const { first, props } = last;
    assert.ok(props.sequenceNumber >= first.sequenceNumber + 2, JSON.stringify(props));
    assert.equal(props.offset, String(props.sequenceNumber));
    assert.ok(props.enqueuedOn instanceof Date && props.retrievedOn instanceof Date);
  });

  test("a receiver with a higher ownerLevel takes the partition over", async () => {
    const device = await createDevice("js-owner");
    const client = await openDevice(device.connectionString);
    try {
      await client.sendEvent(new deviceSdk.Message("owned"));
    } finally {
      await client.close();
    }
    // Fresh clients, and one partition each, so no load balancing runs beside the owners.
    const first = new EventHubConsumerClient("$Default", eventHubConnectionString);
    const second = new EventHubConsumerClient("$Default", eventHubConnectionString);
    const subscriptions = [];
    try {
      const [{ partitionId }] = await readBack(device.deviceId, 1, first);
      let lost;
      const disconnected = waitFor("the takeover", (done) => { lost = done; }, 30_000);
      // The first owner has surely attached once it has read the device's event.
      await waitFor("the device's event under ownerLevel 1", (found) => {
        subscriptions.push(first.subscribe(partitionId, {
          processEvents: async (batch) => {
            if (batch.some((e) => e.systemProperties?.["iothub-connection-device-id"] === device.deviceId)) {
              found();
            }
          },
          processError: async (err) => {
            if (err.code === "ReceiverDisconnectedError") lost(err);
          },
        }, { ownerLevel: 1, startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1 }));
      }, 30_000);
      subscriptions.push(second.subscribe(partitionId, {
        processEvents: async () => {},
        processError: async () => {},
      }, { ownerLevel: 2, startPosition: latestEventPosition, maxWaitTimeInSeconds: 1 }));
      const err = await disconnected;
      assert.match(err.message, /New receiver .* with higher epoch of '2'/);
    } finally {
      for (const s of subscriptions) await s.close();
      await first.close();
      await second.close();
    }
  });
});
