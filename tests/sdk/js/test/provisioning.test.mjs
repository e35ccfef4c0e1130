// Device provisioning: azure-iot-provisioning-device with its MQTT transport and a
// symmetric key or an X.509 certificate registers against the local hub (the
// provisioning host is the hub, the ID scope comes from hub.json), then
// azure-iot-device connects with what it got.

import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { test } from "node:test";

import provisioning from "azure-iot-provisioning-device";
import provisioningMqtt from "azure-iot-provisioning-device-mqtt";
import deviceMqtt from "azure-iot-device-mqtt";
import symmetricKey from "azure-iot-security-symmetric-key";
import x509Security from "azure-iot-security-x509";

import { certificateAuthority, selfSigned, signedBy } from "./certs.mjs";
import { deviceSdk, info, openDevice, registry, uniqueId } from "./hub.mjs";

const newKey = () => randomBytes(32).toString("base64");
const hmacBase64 = (key, text) =>
  createHmac("sha256", Buffer.from(key, "base64")).update(text).digest("base64");

/** A SAS of the hub's owner policy for the provisioning host. */
function ownerToken() {
  const parts = Object.fromEntries(
    info.serviceConnectionString.split(";").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  const sr = encodeURIComponent(info.provisioningHost);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = encodeURIComponent(hmacBase64(parts.SharedAccessKey, `${sr}\n${se}`));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}&skn=${parts.SharedAccessKeyName}`;
}

async function putEnrollment(path, body) {
  const url = `https://${info.provisioningHost}:${info.ports.https}${path}?api-version=2021-10-01`;
  const r = await fetch(url, {
    method: "PUT",
    headers: { Authorization: ownerToken(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, await r.text());
}

async function provisionAndSend(registrationId, key, expectedDevice) {
  const security = new symmetricKey.SymmetricKeySecurityClient(registrationId, key);
  const client = provisioning.ProvisioningDeviceClient.create(
    info.provisioningHost, info.idScope, new provisioningMqtt.Mqtt(), security,
  );
  client.setProvisioningPayload({ modelId: "dtmi:com:example:Thermostat;1" });
  const result = await client.register();
  assert.equal(result.assignedHub, info.hostName);
  assert.equal(result.deviceId, expectedDevice);

  const device = await openDevice(
    `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`,
  );
  try {
    await device.sendEvent(new deviceSdk.Message("provisioned and sending"));
  } finally {
    await device.close();
  }
  await registry.delete(expectedDevice);
}

test("an individual enrollment provisions over MQTT, then the device sends", async () => {
  const registrationId = uniqueId("js-dps");
  const key = newKey();
  await putEnrollment(`/enrollments/${registrationId}`, {
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
  });
  await provisionAndSend(registrationId, key, registrationId);
});

test("a group enrollment provisions a device with its derived key", async () => {
  const groupId = uniqueId("js-fleet");
  const groupKey = newKey();
  await putEnrollment(`/enrollmentGroups/${groupId}`, {
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
  });
  const registrationId = uniqueId("js-member");
  await provisionAndSend(registrationId, hmacBase64(groupKey, registrationId), registrationId);
});

/** Registers with the certificate over MQTT, then connects with it and sends. */
async function provisionX509AndSend(registrationId, identity) {
  const security = new x509Security.X509Security(registrationId, {
    cert: identity.cert,
    key: identity.key,
  });
  const client = provisioning.ProvisioningDeviceClient.create(
    info.provisioningHost, info.idScope, new provisioningMqtt.Mqtt(), security,
  );
  const result = await client.register();
  assert.equal(result.assignedHub, info.hostName);
  assert.equal(result.deviceId, registrationId);

  const device = deviceSdk.Client.fromConnectionString(
    `HostName=${result.assignedHub};DeviceId=${result.deviceId};x509=true`, deviceMqtt.Mqtt,
  );
  await device.setOptions({ cert: identity.cert, key: identity.key });
  try {
    await device.open();
    await device.sendEvent(new deviceSdk.Message("provisioned with a certificate"));
  } finally {
    await device.close();
  }
  const { responseBody: created } = await registry.get(registrationId);
  assert.equal(created.authentication.type, "selfSigned");
  assert.equal(created.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), identity.sha1);
  await registry.delete(registrationId);
}

test("an individual X.509 enrollment provisions over MQTT, then the device connects with it", async () => {
  const registrationId = uniqueId("js-dps-x509");
  const identity = selfSigned(registrationId);
  await putEnrollment(`/enrollments/${registrationId}`, {
    attestation: { type: "x509", x509: { clientCertificates: { primary: { certificate: identity.cert } } } },
  });
  await provisionX509AndSend(registrationId, identity);
});

test("an X.509 enrollment group provisions a device its CA signed", async () => {
  const groupId = uniqueId("js-x509-fleet");
  const ca = certificateAuthority(`${groupId}-ca`);
  await putEnrollment(`/enrollmentGroups/${groupId}`, {
    attestation: { type: "x509", x509: { signingCertificates: { primary: { certificate: ca.cert } } } },
  });
  const registrationId = uniqueId("js-x509-member");
  await provisionX509AndSend(registrationId, signedBy(ca, registrationId));
});

test("a certificate no enrollment names is refused", async () => {
  const registrationId = uniqueId("js-x509-stranger");
  const identity = selfSigned(registrationId);
  const security = new x509Security.X509Security(registrationId, {
    cert: identity.cert,
    key: identity.key,
  });
  const client = provisioning.ProvisioningDeviceClient.create(
    info.provisioningHost, info.idScope, new provisioningMqtt.Mqtt(), security,
  );
  await assert.rejects(client.register(), (err) => {
    assert.match(String(err), /Unauthorized|not authorized|401/i);
    return true;
  });
});
