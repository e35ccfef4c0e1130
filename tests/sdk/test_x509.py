"""X.509 device authentication with the official Python device SDK:
IoTHubDeviceClient.create_from_x509_certificate over MQTT/TLS, for identities made with
the official service SDK (create_device_with_x509 for thumbprints,
create_device_with_certificate_authority for a CA registered on the hub)."""

import pytest

from conftest import unique_id, wait_for
import x509_certs


@pytest.fixture
def x509_dir(hub):
    if hub.x509_problem:
        pytest.fail(hub.x509_problem, pytrace=False)
    return hub.x509_dir


@pytest.fixture
def x509_client(hub):
    """Builds X.509 device clients that trust the hub CA; shuts them down afterwards."""
    from azure.iot.device import IoTHubDeviceClient, X509

    clients = []

    def _make(device_id: str, issued: x509_certs.Issued, **kwargs):
        client = IoTHubDeviceClient.create_from_x509_certificate(
            x509=X509(cert_file=str(issued.cert), key_file=str(issued.key)),
            hostname=hub.host_name,
            device_id=device_id,
            server_verification_cert=hub.ca_pem,
            **kwargs,
        )
        clients.append(client)
        return client

    yield _make
    for client in clients:
        try:
            client.shutdown()
        except Exception:
            pass


@pytest.fixture
def x509_devices(registry_manager):
    created = []
    yield created
    for device_id in created:
        try:
            registry_manager.delete_device(device_id)
        except Exception:
            pass


def _connected_and_sending(registry_manager, client, device_id):
    from azure.iot.device import Message

    client.connect()
    assert client.connected
    # send_message returns once the hub has PUBACKed the QoS 1 PUBLISH.
    client.send_message(Message('{"auth": "x509"}', content_type="application/json"))
    twin = client.get_twin()
    assert set(twin) >= {"desired", "reported"}, twin
    assert wait_for(
        lambda: registry_manager.get_device(device_id).connection_state == "Connected",
        timeout=10,
    ), "the hub never marked the device Connected"


def test_self_signed_device_connects_by_thumbprint(registry_manager, x509_dir, x509_client, x509_devices):
    device_id = unique_id("x509ss")
    cert = x509_certs.self_signed(x509_dir, device_id, "any subject")
    # Azure takes SHA-1 or SHA-256 thumbprints; the SDK's own samples use SHA-1.
    registry_manager.create_device_with_x509(device_id, cert.sha1(), cert.sha256(), "enabled")
    x509_devices.append(device_id)
    dev = registry_manager.get_device(device_id)
    assert dev.authentication.type == "selfSigned"
    _connected_and_sending(registry_manager, x509_client(device_id, cert), device_id)


def test_ca_signed_device_connects_with_its_device_id_as_cn(hub, registry_manager, x509_dir, x509_client,
                                                          x509_devices):
    device_id = unique_id("x509ca")
    cert = x509_certs.issue(hub.x509_ca, x509_dir, device_id, device_id)
    registry_manager.create_device_with_certificate_authority(device_id, "enabled")
    x509_devices.append(device_id)
    _connected_and_sending(registry_manager, x509_client(device_id, cert), device_id)


def test_a_certificate_the_identity_does_not_name_is_refused(hub, registry_manager, x509_dir, x509_client,
                                                            x509_devices):
    from azure.iot.device.exceptions import CredentialError

    device_id = unique_id("x509no")
    registered = x509_certs.self_signed(x509_dir, device_id + "-a", "a")
    other = x509_certs.self_signed(x509_dir, device_id + "-b", "b")
    registry_manager.create_device_with_x509(device_id, registered.sha256(), None, "enabled")
    x509_devices.append(device_id)
    client = x509_client(device_id, other, connection_retry=False)
    # CONNACK 5 (not authorized), which the SDK reports as a credential error.
    with pytest.raises(CredentialError):
        client.connect()

    # A CA-signed certificate whose CN is another device's id.
    ca_device = unique_id("x509cn")
    registry_manager.create_device_with_certificate_authority(ca_device, "enabled")
    x509_devices.append(ca_device)
    wrong_cn = x509_certs.issue(hub.x509_ca, x509_dir, ca_device + "-cn", "not-" + ca_device)
    client = x509_client(ca_device, wrong_cn, connection_retry=False)
    with pytest.raises(CredentialError):
        client.connect()


def test_self_signed_device_over_websockets(hub, registry_manager, x509_dir, x509_client, x509_devices):
    # The SDK dials wss://{hostname}:443 with the certificate in that TLS handshake.
    if int(hub.ports["https"]) != 443:
        pytest.skip(f"MQTT over WebSockets dials port 443; the hub's HTTPS port is {hub.ports['https']}")
    device_id = unique_id("x509ws")
    cert = x509_certs.self_signed(x509_dir, device_id, device_id)
    registry_manager.create_device_with_x509(device_id, cert.sha256(), None, "enabled")
    x509_devices.append(device_id)
    _connected_and_sending(registry_manager, x509_client(device_id, cert, websockets=True), device_id)


def test_ca_signed_module_carries_device_slash_module_as_cn(hub, registry_manager, make_device, x509_dir):
    from azure.iot.device import IoTHubModuleClient, Message, X509

    ident = make_device("x509mod")
    module_id = "m1"
    registry_manager.create_module_with_certificate_authority(ident.device_id, module_id, None)
    cert = x509_certs.issue(hub.x509_ca, x509_dir, f"{ident.device_id}-{module_id}",
                            f"{ident.device_id}/{module_id}")
    client = IoTHubModuleClient.create_from_x509_certificate(
        x509=X509(cert_file=str(cert.cert), key_file=str(cert.key)),
        hostname=hub.host_name,
        device_id=ident.device_id,
        module_id=module_id,
        server_verification_cert=hub.ca_pem,
    )
    try:
        client.connect()
        assert client.connected
        client.send_message(Message('{"from": "module"}'))
    finally:
        client.shutdown()
