"""Device Provisioning Service: azure-iot-device's ProvisioningDeviceClient registers
against the local hub (provisioning host = the hub, ID scope from hub.json, MQTT on 8883),
then IoTHubDeviceClient connects to the assigned hub with the same key and sends."""

import base64
import hashlib
import hmac
import time
import urllib.parse

import pytest
import requests

from conftest import new_key, unique_id

MODEL_ID = "dtmi:com:example:Thermostat;1"


def owner_token(hub) -> str:
    """A SAS for the hub's owner policy, scoped to the provisioning host."""
    key_name, key = None, None
    for part in hub.service_connection_string.split(";"):
        k, _, v = part.partition("=")
        if k == "SharedAccessKeyName":
            key_name = v
        elif k == "SharedAccessKey":
            key = v
    sr = urllib.parse.quote(hub.info["provisioningHost"], safe="")
    expiry = int(time.time()) + 3600
    mac = hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256)
    sig = urllib.parse.quote(base64.b64encode(mac.digest()).decode(), safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={key_name}"


def put_enrollment(hub, path: str, body: dict) -> dict:
    url = f"https://{hub.info['provisioningHost']}:{hub.ports['https']}{path}?api-version=2021-10-01"
    r = requests.put(url, json=body, headers={"Authorization": owner_token(hub)}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def symmetric_key_attestation(key: str) -> dict:
    return {"type": "symmetricKey", "symmetricKey": {"primaryKey": key}}


def enroll_individual(hub, registration_id: str, key: str, **extra) -> dict:
    body = {"attestation": symmetric_key_attestation(key), **extra}
    return put_enrollment(hub, f"/enrollments/{registration_id}", body)


def derived_key(group_key: str, registration_id: str) -> str:
    mac = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def provision_and_send(
    hub, registration_id: str, key: str, expected_device: str, websockets: bool = False
):
    from azure.iot.device import IoTHubDeviceClient, ProvisioningDeviceClient

    pdc = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=hub.info["provisioningHost"],
        registration_id=registration_id,
        id_scope=hub.info["idScope"],
        symmetric_key=key,
        server_verification_cert=hub.ca_pem,
        websockets=websockets,
    )
    pdc.provisioning_payload = {"modelId": MODEL_ID}
    result = pdc.register()
    assert result.status == "assigned", result
    state = result.registration_state
    assert state.assigned_hub == hub.host_name
    assert state.device_id == expected_device

    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key,
        hostname=state.assigned_hub,
        device_id=state.device_id,
        server_verification_cert=hub.ca_pem,
    )
    try:
        client.connect()
        assert client.connected
        client.send_message("provisioned and sending")
    finally:
        client.shutdown()


@pytest.mark.timeout(60)
def test_individual_enrollment_provisions_then_sends(hub, registry_manager):
    registration_id = unique_id("dps")
    device_id = unique_id("dev")
    key = new_key()
    enroll_individual(
        hub, registration_id, key, deviceId=device_id, initialTwin={"tags": {"site": "lab"}}
    )
    provision_and_send(hub, registration_id, key, device_id)
    twin = registry_manager.get_twin(device_id)
    assert twin.tags == {"site": "lab"}
    registry_manager.delete_device(device_id)


@pytest.mark.timeout(60)
def test_group_enrollment_provisions_with_a_derived_key(hub, registry_manager):
    group_id = unique_id("fleet")
    group_key = new_key()
    put_enrollment(
        hub,
        f"/enrollmentGroups/{group_id}",
        {"attestation": symmetric_key_attestation(group_key)},
    )
    registration_id = unique_id("member")
    provision_and_send(hub, registration_id, derived_key(group_key, registration_id), registration_id)
    registry_manager.delete_device(registration_id)


@pytest.mark.timeout(60)
def test_provisioning_over_websockets(hub, registry_manager):
    """websockets=True dials wss://{provisioning_host}:443/$iothub/websocket (as for the hub)."""
    if int(hub.ports["https"]) != 443:
        pytest.skip(
            f"MQTT over WebSockets dials port 443; the hub's HTTPS port is {hub.ports['https']}"
        )
    registration_id = unique_id("dps-ws")
    key = new_key()
    enroll_individual(hub, registration_id, key)
    provision_and_send(hub, registration_id, key, registration_id, websockets=True)
    registry_manager.delete_device(registration_id)


# --------------------------------------------------------------------------
# X.509 attestation: ProvisioningDeviceClient.create_from_x509_certificate presents the
# certificate in the TLS handshake of the DPS MQTT connection (no password), then
# IoTHubDeviceClient.create_from_x509_certificate connects to the assigned hub with it.


@pytest.fixture
def x509_files(tmp_path):
    import x509_certs

    problem = x509_certs.openssl_missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    return tmp_path


def pem_text(issued) -> str:
    """The certificate alone, as the enrollment API takes it."""
    text = issued.cert.read_text()
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return text[text.index("-----BEGIN CERTIFICATE-----"):end] + "\n"


def provision_x509_and_send(
    hub, registration_id: str, issued, expected_device: str, websockets: bool = False
):
    from azure.iot.device import IoTHubDeviceClient, ProvisioningDeviceClient, X509

    x509 = X509(cert_file=str(issued.cert), key_file=str(issued.key))
    pdc = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=hub.info["provisioningHost"],
        registration_id=registration_id,
        id_scope=hub.info["idScope"],
        x509=x509,
        server_verification_cert=hub.ca_pem,
        websockets=websockets,
    )
    result = pdc.register()
    assert result.status == "assigned", result
    state = result.registration_state
    assert state.assigned_hub == hub.host_name
    assert state.device_id == expected_device

    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=x509,
        hostname=state.assigned_hub,
        device_id=state.device_id,
        server_verification_cert=hub.ca_pem,
    )
    try:
        client.connect()
        assert client.connected
        client.send_message("provisioned with a certificate and sending")
    finally:
        client.shutdown()


@pytest.mark.timeout(60)
def test_individual_x509_enrollment_provisions_then_connects(hub, registry_manager, x509_files):
    import x509_certs

    registration_id = unique_id("dps-x509")
    device_id = unique_id("cam")
    issued = x509_certs.self_signed(x509_files, "device", registration_id)
    enrolled = put_enrollment(
        hub,
        f"/enrollments/{registration_id}",
        {
            "deviceId": device_id,
            "attestation": {
                "type": "x509",
                "x509": {"clientCertificates": {"primary": {"certificate": pem_text(issued)}}},
            },
        },
    )
    info = enrolled["attestation"]["x509"]["clientCertificates"]["primary"]["info"]
    assert info["sha1Thumbprint"] == issued.sha1()
    assert info["sha256Thumbprint"] == issued.sha256()
    assert info["subjectName"] == f"CN={registration_id}"

    provision_x509_and_send(hub, registration_id, issued, device_id)
    device = registry_manager.get_device(device_id)
    assert device.authentication.type == "selfSigned"
    assert device.authentication.x509_thumbprint.primary_thumbprint == issued.sha1()
    registry_manager.delete_device(device_id)


@pytest.mark.timeout(60)
def test_group_x509_enrollment_provisions_a_ca_signed_device(hub, registry_manager, x509_files):
    """DPS makes a group's device a selfSigned identity with its certificate's thumbprint
    (Azure's own provisioning e2e tests assert selfSigned for group enrollments too)."""
    import x509_certs

    ca = x509_certs.make_ca(x509_files / "group-ca", cn=unique_id("group-ca"))
    group_id = unique_id("x509-fleet")
    put_enrollment(
        hub,
        f"/enrollmentGroups/{group_id}",
        {
            "attestation": {
                "type": "x509",
                "x509": {"signingCertificates": {"primary": {"certificate": pem_text(ca)}}},
            },
        },
    )
    registration_id = unique_id("x509-member")
    issued = x509_certs.issue(ca, x509_files, "member", registration_id)
    provision_x509_and_send(hub, registration_id, issued, registration_id)
    device = registry_manager.get_device(registration_id)
    assert device.authentication.type == "selfSigned"
    assert device.authentication.x509_thumbprint.primary_thumbprint == issued.sha1()
    registry_manager.delete_device(registration_id)


@pytest.mark.timeout(60)
def test_x509_provisioning_over_websockets(hub, registry_manager, x509_files):
    """With websockets=True the certificate arrives in the TLS handshake of the HTTPS port."""
    import x509_certs

    if int(hub.ports["https"]) != 443:
        pytest.skip(
            f"MQTT over WebSockets dials port 443; the hub's HTTPS port is {hub.ports['https']}"
        )
    registration_id = unique_id("dps-x509-ws")
    issued = x509_certs.self_signed(x509_files, "device-ws", registration_id)
    put_enrollment(
        hub,
        f"/enrollments/{registration_id}",
        {
            "attestation": {
                "type": "x509",
                "x509": {"clientCertificates": {"primary": {"certificate": pem_text(issued)}}},
            },
        },
    )
    provision_x509_and_send(hub, registration_id, issued, registration_id, websockets=True)
    registry_manager.delete_device(registration_id)


@pytest.mark.timeout(60)
def test_a_certificate_not_enrolled_is_refused(hub, x509_files):
    import x509_certs
    from azure.iot.device import ProvisioningDeviceClient, X509
    from azure.iot.device.exceptions import CredentialError

    registration_id = unique_id("dps-x509-no")
    enrolled = x509_certs.self_signed(x509_files, "enrolled", registration_id)
    put_enrollment(
        hub,
        f"/enrollments/{registration_id}",
        {
            "attestation": {
                "type": "x509",
                "x509": {"clientCertificates": {"primary": {"certificate": pem_text(enrolled)}}},
            },
        },
    )
    impostor = x509_certs.self_signed(x509_files, "impostor", registration_id)
    pdc = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=hub.info["provisioningHost"],
        registration_id=registration_id,
        id_scope=hub.info["idScope"],
        x509=X509(cert_file=str(impostor.cert), key_file=str(impostor.key)),
        server_verification_cert=hub.ca_pem,
    )
    # The DPS CONNECT is refused with 5 (not authorized), which the SDK raises as for a bad key.
    with pytest.raises(CredentialError):
        pdc.register()
