// Device file upload with azure-iot-device, unmodified: Client.uploadToBlob asks the hub
// for a SAS URI, uploads with @azure/storage-blob and notifies the hub; the service's
// file notification receiver (azure-iothub) hears of it, and the blob is in the store.

import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";

import { BlobServiceClient } from "@azure/storage-blob";
import iothub from "azure-iothub";

import { createDevice, openDevice, serviceConnectionString, storage, waitFor } from "./hub.mjs";

test("uploadToBlob stores the file and the service is notified", async () => {
  const { deviceId, connectionString } = await createDevice("js-upl");
  const service = iothub.Client.fromConnectionString(serviceConnectionString);
  await service.open();
  const { result: receiver } = await service.getFileNotificationReceiver();
  const notified = waitFor("the file upload notification", (done) =>
    receiver.on("message", (msg) => {
      const n = JSON.parse(msg.getData().toString());
      receiver.complete(msg, () => {});
      if (n.deviceId === deviceId) done(n);
    }));

  const device = await openDevice(connectionString);
  const data = Buffer.from("a picture, in words\n".repeat(500));
  try {
    await device.uploadToBlob("camera/shot.txt", Readable.from([data]), data.length);
  } finally {
    await device.close();
  }

  const n = await notified;
  assert.equal(n.blobName, `${deviceId}/camera/shot.txt`);
  assert.equal(n.blobSizeInBytes, data.length);
  await service.close();

  const blob = BlobServiceClient.fromConnectionString(storage.connectionString)
    .getContainerClient("fileuploads")
    .getBlobClient(`${deviceId}/camera/shot.txt`);
  assert.deepEqual(await blob.downloadToBuffer(), data);
});
