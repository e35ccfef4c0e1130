// @azure/storage-blob against the hub's blob store: the storage connection string
// from hub.json (Shared Key), and service SAS URLs made with the SDK's own
// generateBlobSASQueryParameters.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";

import {
  BlobSASPermissions, BlobServiceClient, BlockBlobClient, ContainerClient,
  ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters,
} from "@azure/storage-blob";

import { storage, uniqueId } from "./hub.mjs";

const service = () => BlobServiceClient.fromConnectionString(storage.connectionString);
const credential = () => new StorageSharedKeyCredential(storage.accountName, storage.accountKey);
const inHours = (h) => new Date(Date.now() + h * 3600_000);
const containerName = () => uniqueId("jsbox").toLowerCase();

async function drain(stream) {
  const parts = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

describe("blob store (@azure/storage-blob)", () => {
  test("connection string: upload, list, ranged download, blocks, delete", async () => {
    assert.ok(storage, "hub.json has a storage section");
    const name = containerName();
    const container = service().getContainerClient(name);
    await container.create();
    const data = randomBytes(200_000);
    const blob = container.getBlockBlobClient("dir/a.bin");
    await blob.upload(data, data.length, { blobHTTPHeaders: { blobContentType: "application/x-test" } });
    await container.getBlockBlobClient("dir/b.txt").upload("hi", 2);
    await container.getBlockBlobClient("top.txt").upload("x", 1);

    const props = await blob.getProperties();
    assert.equal(props.contentLength, data.length);
    assert.equal(props.contentType, "application/x-test");

    const names = [];
    for await (const b of container.listBlobsFlat({ prefix: "dir/" })) names.push(b.name);
    assert.deepEqual(names, ["dir/a.bin", "dir/b.txt"]);
    const top = [];
    for await (const item of container.listBlobsByHierarchy("/")) top.push(item.kind === "prefix" ? `${item.name}*` : item.name);
    assert.deepEqual(top, ["dir/*", "top.txt"]);
    const pages = [];
    for await (const page of container.listBlobsFlat().byPage({ maxPageSize: 2 })) pages.push(page.segment.blobItems.length);
    assert.deepEqual(pages, [2, 1]);

    const whole = await blob.download();
    assert.ok((await drain(whole.readableStreamBody)).equals(data));
    const part = await blob.download(1000, 500);
    assert.equal(part.contentRange, `bytes 1000-1499/${data.length}`);
    assert.ok((await drain(part.readableStreamBody)).equals(data.subarray(1000, 1500)));

    // Staged blocks, committed in a chosen order.
    const staged = container.getBlockBlobClient("staged.bin");
    const ids = ["AAAA", "AAAB", "AAAC"].map((s) => Buffer.from(s).toString("base64"));
    const chunks = ids.map(() => randomBytes(50_000));
    for (let i = 0; i < ids.length; i++) await staged.stageBlock(ids[i], chunks[i], chunks[i].length);
    await staged.commitBlockList([ids[2], ids[0], ids[1]]);
    const joined = Buffer.concat([chunks[2], chunks[0], chunks[1]]);
    assert.ok((await staged.downloadToBuffer()).equals(joined));

    // uploadData switches to blocks above maxSingleShotSize.
    const big = randomBytes(600_000);
    const chunked = container.getBlockBlobClient("chunked.bin");
    await chunked.uploadData(big, { maxSingleShotSize: 100_000, blockSize: 100_000 });
    assert.ok((await chunked.downloadToBuffer()).equals(big));

    await blob.delete();
    assert.equal(await blob.exists(), false);
    await container.delete();
  });

  test("service SAS URLs: permissions and expiry", async () => {
    const name = containerName();
    await service().getContainerClient(name).create();
    const sas = (blobName, permissions, expiresOn) =>
      generateBlobSASQueryParameters(
        { containerName: name, blobName, permissions: BlobSASPermissions.parse(permissions), expiresOn },
        credential(),
      ).toString();
    const url = (blobName, query) => `${storage.blobEndpoint}/${name}/${blobName}?${query}`;

    await new BlockBlobClient(url("up.txt", sas("up.txt", "cw", inHours(1)))).upload("via sas", 7);
    const reader = new BlockBlobClient(url("up.txt", sas("up.txt", "r", inHours(1))));
    assert.equal((await reader.downloadToBuffer()).toString(), "via sas");
    assert.equal((await reader.downloadToBuffer(4, 3)).toString(), "sas");
    await assert.rejects(reader.delete(), (e) => {
      assert.equal(e.statusCode, 403);
      assert.equal(e.details?.errorCode ?? e.code, "AuthorizationPermissionMismatch");
      return true;
    });
    const expired = new BlockBlobClient(url("up.txt", sas("up.txt", "r", inHours(-1))));
    await assert.rejects(expired.downloadToBuffer(), (e) => {
      assert.equal(e.statusCode, 403);
      return true;
    });

    const containerSas = generateBlobSASQueryParameters(
      { containerName: name, permissions: ContainerSASPermissions.parse("rld"), expiresOn: inHours(1) },
      credential(),
    ).toString();
    const container = new ContainerClient(`${storage.blobEndpoint}/${name}?${containerSas}`);
    const names = [];
    for await (const b of container.listBlobsFlat()) names.push(b.name);
    assert.deepEqual(names, ["up.txt"]);
    await container.getBlobClient("up.txt").delete();
    await service().getContainerClient(name).delete();
  });
});
