// azure-iothub against the local hub: the registry and twins over REST, C2D with
// feedback and direct methods over AMQP (TLS on 5671, and WebSockets on 443).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  createDevice, deviceSdk, feedbackFor, invokeOnceSubscribed, iothub, openDevice, registry,
  serviceConnectionString, uniqueId, waitFor,
} from "./hub.mjs";

describe("registry (REST)", () => {
  test("create, get, update, list and delete a device", async () => {
    const { deviceId } = await createDevice("js-reg");
    const { responseBody: got } = await registry.get(deviceId);
    assert.equal(got.deviceId, deviceId);
    assert.equal(got.status, "enabled");
    assert.ok(got.etag, "a device carries an etag");
    assert.ok(got.authentication.symmetricKey.primaryKey);

    const { responseBody: updated } = await registry.update({ deviceId, status: "disabled" });
    assert.equal(updated.status, "disabled");

    const { responseBody: all } = await registry.list();
    assert.ok(all.some((d) => d.deviceId === deviceId));

    await registry.delete(deviceId);
    await assert.rejects(registry.get(deviceId), (e) => {
      assert.equal(e.name, "DeviceNotFoundError");
      return true;
    });
  });

  test("creating a device twice is a DeviceAlreadyExistsError", async () => {
    const { deviceId } = await createDevice("js-dup");
    await assert.rejects(registry.create({ deviceId }), { name: "DeviceAlreadyExistsError" });
  });

  test("a query pages through twins", async () => {
    const tag = uniqueId("fleet");
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const { deviceId } = await createDevice("js-q");
      const { responseBody: twin } = await registry.getTwin(deviceId);
      await registry.updateTwin(deviceId, { tags: { fleet: tag } }, twin.etag);
      ids.push(deviceId);
    }
    const query = registry.createQuery(`SELECT * FROM devices WHERE tags.fleet = '${tag}'`, 2);
    const seen = [];
    do {
      const { result } = await query.nextAsTwin();
      seen.push(...result.map((t) => t.deviceId));
    } while (query.hasMoreResults);
    assert.deepEqual(seen.sort(), ids.sort());
  });

  test("projections, TOP and GROUP BY come back as plain rows, page by page", async () => {
    const tag = uniqueId("rows");
    const siteOf = {};
    for (let i = 0; i < 3; i++) {
      const { deviceId } = await createDevice("js-rows");
      const { responseBody: twin } = await registry.getTwin(deviceId);
      siteOf[deviceId] = i < 2 ? "north" : "south";
      await registry.updateTwin(deviceId, { tags: { fleet: tag, site: siteOf[deviceId] } }, twin.etag);
    }
    const ids = Object.keys(siteOf).sort();
    const rows = async (sql, pageSize) => {
      const query = registry.createQuery(sql, pageSize);
      const all = [];
      do {
        // The promise form of next() sends no continuation token unless given one
        // (nextAsTwin falls back to the stored one; next does not).
        const { result } = await query.next(query.continuationToken);
        assert.ok(result.length <= pageSize);
        all.push(...result);
      } while (query.hasMoreResults);
      return all;
    };
    const where = `WHERE tags.fleet = '${tag}'`;
    assert.deepEqual(
      await rows(`SELECT deviceId, tags.site AS place FROM devices ${where}`, 1),
      ids.map((deviceId) => ({ deviceId, place: siteOf[deviceId] })),
    );
    assert.deepEqual(
      (await rows(`SELECT TOP 2 * FROM devices ${where} AND STARTSWITH(deviceId, 'js-rows')`, 5))
        .map((t) => t.deviceId),
      ids.slice(0, 2),
    );
    const groups = await rows(`SELECT tags.site AS site, COUNT() AS n FROM devices ${where} GROUP BY tags.site`, 1);
    assert.deepEqual(
      groups.sort((a, b) => a.site.localeCompare(b.site)),
      [{ site: "north", n: 2 }, { site: "south", n: 1 }],
    );
  });
});

describe("twins", () => {
  let device;
  let client;
  before(async () => {
    device = await createDevice("js-twin");
    client = await openDevice(device.connectionString);
  });
  after(() => client?.close());

  test("desired properties reach the device and reported ones come back", async () => {
    const twin = await client.getTwin();
    const desired = waitFor("a desired patch", (done) =>
      twin.on("properties.desired", (patch) => {
        if (patch.interval === 5) done(patch);
      }));
    const { responseBody: serviceTwin } = await registry.getTwin(device.deviceId);
    await serviceTwin.update({ properties: { desired: { interval: 5 } } });
    const patch = await desired;
    assert.ok(patch.$version >= 2, `the patch carries $version: ${JSON.stringify(patch)}`);

    await new Promise((resolve, reject) =>
      twin.properties.reported.update({ interval: 5, firmware: "1.2.3" }, (e) =>
        (e ? reject(e) : resolve())));
    const { responseBody: after } = await registry.getTwin(device.deviceId);
    assert.equal(after.properties.reported.firmware, "1.2.3");
    assert.equal(after.properties.desired.interval, 5);
  });

  test("a stale etag is refused", async () => {
    const { responseBody: twin } = await registry.getTwin(device.deviceId);
    await registry.updateTwin(device.deviceId, { tags: { a: 1 } }, twin.etag);
    await assert.rejects(registry.updateTwin(device.deviceId, { tags: { a: 2 } }, twin.etag), {
      name: "InvalidEtagError",
    });
  });
});

for (const [label, transport] of [["AMQP", undefined], ["AMQP over WebSockets", "ws"]]) {
  describe(`service client over ${label}`, () => {
    let service;
    before(async () => {
      service = transport === "ws"
        ? iothub.Client.fromConnectionString(serviceConnectionString, iothub.AmqpWs)
        : iothub.Client.fromConnectionString(serviceConnectionString);
      await service.open();
    });
    after(() => service?.close());

    test("a C2D message reaches the device and full feedback comes back", async () => {
      const device = await createDevice("js-c2d");
      const client = await openDevice(device.connectionString);
      try {
        const received = waitFor("the C2D message", (done) => client.on("message", done));
        const feedback = feedbackFor(service, device.deviceId);

        const message = new deviceSdk.Message(JSON.stringify({ cmd: "on" }));
        message.messageId = uniqueId("mid");
        message.correlationId = "corr-1";
        message.ack = "full";
        message.contentType = "application/json";
        message.contentEncoding = "utf-8";
        message.properties.add("color", "blue");
        await service.send(device.deviceId, message);

        const got = await received;
        assert.deepEqual(JSON.parse(got.getData().toString()), { cmd: "on" });
        assert.equal(got.messageId, message.messageId);
        assert.equal(got.correlationId, "corr-1");
        assert.equal(got.contentType, "application/json");
        assert.equal(got.properties.getValue("color"), "blue");
        await client.complete(got);

        const record = await feedback;
        assert.equal(record.originalMessageId, message.messageId);
        assert.equal(record.statusCode, "Success");
        assert.ok(record.enqueuedTimeUtc);
      } finally {
        await client.close();
      }
    });

    test("C2D to an unknown device is a DeviceNotFoundError", async () => {
      await assert.rejects(service.send(uniqueId("ghost"), "nobody home"), {
        name: "DeviceNotFoundError",
      });
    });

    test("a direct method is answered by the device", async () => {
      const device = await createDevice("js-method");
      const client = await openDevice(device.connectionString);
      try {
        client.onDeviceMethod("reboot", (request, response) => {
          response.send(200, { rebootIn: request.payload.delay }, () => {});
        });
        const { result } = await invokeOnceSubscribed(service, device.deviceId, {
          methodName: "reboot",
          payload: { delay: 3 },
          responseTimeoutInSeconds: 10,
        });
        assert.equal(result.status, 200);
        assert.deepEqual(result.payload, { rebootIn: 3 });
      } finally {
        await client.close();
      }
    });
  });
}

test("a method on an offline device is a 404 naming DeviceNotOnline", async () => {
  const device = await createDevice("js-offline");
  const service = iothub.Client.fromConnectionString(serviceConnectionString);
  try {
    // azure-iothub turns a 404 without DeviceNotFound/IotHubNotFound into a bare
    // "Not found" error; the response carries the reason.
    await assert.rejects(
      service.invokeDeviceMethod(device.deviceId, { methodName: "x", responseTimeoutInSeconds: 5 }),
      (e) => {
        assert.equal(e.response?.statusCode, 404);
        assert.match(String(e.responseBody), /404103|DeviceNotOnline/);
        return true;
      },
    );
  } finally {
    await service.close();
  }
});
