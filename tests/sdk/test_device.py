"""Device side over MQTT/TLS (azure-iot-device) together with the service REST API."""

import queue

import pytest
from msrest.exceptions import HttpOperationError

from conftest import new_key, unique_id, wait_for


def test_connect_sets_connection_state(registry_manager, connected_device):
    ident, client = connected_device
    assert client.connected
    # The hub marks the device connected (twin and registry views agree).
    twin = wait_for(
        lambda: (t := registry_manager.get_twin(ident.device_id)).connection_state == "Connected" and t,
        timeout=10,
    )
    assert twin, "twin.connectionState never became 'Connected'"
    dev = registry_manager.get_device(ident.device_id)
    assert dev.connection_state == "Connected"

    client.disconnect()
    assert not client.connected
    twin = wait_for(
        lambda: (t := registry_manager.get_twin(ident.device_id)).connection_state == "Disconnected" and t,
        timeout=10,
    )
    assert twin, "twin.connectionState never went back to 'Disconnected'"


def test_send_telemetry_with_properties(connected_device):
    from azure.iot.device import Message

    ident, client = connected_device
    msg = Message('{"temperature": 21.5, "unit": "°C"}', content_encoding="utf-8",
                  content_type="application/json")
    msg.message_id = "mid-1"
    msg.correlation_id = "cid-1"
    msg.custom_properties["alert"] = "high temp"
    msg.custom_properties["a&b=c/d"] = "x?y#z%"
    # send_message returns only once the hub has PUBACKed the QoS 1 PUBLISH.
    client.send_message(msg)
    # Plain strings, no properties, and a batch in a row on the same connection.
    client.send_message("plain text body")
    for i in range(5):
        m = Message(f'{{"seq": {i}}}')
        m.custom_properties["seq"] = str(i)
        client.send_message(m)
    assert client.connected


def test_device_gets_twin(registry_manager, connected_device):
    ident, client = connected_device
    twin = client.get_twin()
    assert set(twin) >= {"desired", "reported"}, twin
    service = registry_manager.get_twin(ident.device_id)
    assert twin["desired"]["$version"] == service.properties.desired["$version"]
    assert twin["reported"]["$version"] == service.properties.reported["$version"]


def test_reported_properties_roundtrip(registry_manager, connected_device):
    ident, client = connected_device
    v0 = registry_manager.get_twin(ident.device_id).properties.reported["$version"]

    client.patch_twin_reported_properties(
        {"temperature": 21.5, "firmware": {"version": "1.2.3", "channel": "beta"}, "ok": True}
    )
    reported = registry_manager.get_twin(ident.device_id).properties.reported
    assert reported["temperature"] == 21.5
    assert reported["firmware"] == {"version": "1.2.3", "channel": "beta"}
    assert reported["ok"] is True
    assert reported["$version"] == v0 + 1

    # null deletes; nested objects merge.
    client.patch_twin_reported_properties({"ok": None, "firmware": {"channel": None}})
    reported = registry_manager.get_twin(ident.device_id).properties.reported
    assert "ok" not in reported
    assert reported["firmware"] == {"version": "1.2.3"}
    assert reported["temperature"] == 21.5
    assert reported["$version"] == v0 + 2

    # The device sees the same document.
    twin = client.get_twin()
    assert twin["reported"]["temperature"] == 21.5
    assert twin["reported"]["firmware"] == {"version": "1.2.3"}
    assert twin["reported"]["$version"] == v0 + 2


def test_desired_patch_reaches_device(registry_manager, connected_device):
    from azure.iot.hub.models import Twin, TwinProperties

    ident, client = connected_device
    patches = queue.Queue()
    client.on_twin_desired_properties_patch_received = patches.put  # subscribes (waits for SUBACK)

    before = registry_manager.get_twin(ident.device_id)
    after = registry_manager.update_twin(
        ident.device_id,
        Twin(properties=TwinProperties(desired={"interval": 5, "mode": {"eco": True}})),
        before.etag,
    )
    new_version = after.properties.desired["$version"]
    assert new_version == before.properties.desired["$version"] + 1
    assert after.properties.desired["interval"] == 5
    assert after.etag != before.etag

    patch = patches.get(timeout=15)
    assert patch["interval"] == 5
    assert patch["mode"] == {"eco": True}
    assert patch["$version"] == new_version

    # A second update: only the changed members are sent, with the next version.
    after2 = registry_manager.update_twin(
        ident.device_id, Twin(properties=TwinProperties(desired={"interval": None})), after.etag
    )
    patch2 = patches.get(timeout=15)
    assert patch2["$version"] == after2.properties.desired["$version"] == new_version + 1
    assert "interval" in patch2 and patch2["interval"] is None
    assert "mode" not in patch2

    # The device's GET agrees with the service.
    twin = client.get_twin()
    assert twin["desired"]["$version"] == new_version + 1
    assert "interval" not in twin["desired"]
    assert twin["desired"]["mode"] == {"eco": True}


def test_direct_method_answered_by_device(registry_manager, connected_device):
    from azure.iot.device import MethodResponse
    from azure.iot.hub.models import CloudToDeviceMethod

    ident, client = connected_device
    seen = []

    def on_method(request):
        seen.append((request.name, request.payload))
        if request.name == "reboot":
            resp = MethodResponse.create_from_method_request(
                request, 200, {"rebooting": True, "echo": request.payload}
            )
        else:
            resp = MethodResponse.create_from_method_request(
                request, 404, {"error": f"no method {request.name}"}
            )
        client.send_method_response(resp)

    client.on_method_request_received = on_method  # subscribes to $iothub/methods/POST/#

    result = registry_manager.invoke_device_method(
        ident.device_id,
        CloudToDeviceMethod(
            method_name="reboot",
            payload={"delay": 3, "reason": "conformance"},
            response_timeout_in_seconds=30,
            connect_timeout_in_seconds=0,
        ),
    )
    assert result.status == 200
    assert result.payload == {"rebooting": True, "echo": {"delay": 3, "reason": "conformance"}}
    assert seen[0] == ("reboot", {"delay": 3, "reason": "conformance"})

    # The device's own status code is passed through (HTTP 200 from the hub).
    result = registry_manager.invoke_device_method(
        ident.device_id,
        CloudToDeviceMethod(method_name="selfDestruct", payload="now", response_timeout_in_seconds=10),
    )
    assert result.status == 404
    assert result.payload == {"error": "no method selfDestruct"}
    assert seen[1] == ("selfDestruct", "now")

    # No payload: the service SDK sends "" and the device sees ""... or null.
    result = registry_manager.invoke_device_method(
        ident.device_id, CloudToDeviceMethod(method_name="reboot", response_timeout_in_seconds=10)
    )
    assert result.status == 200
    assert seen[2][0] == "reboot" and seen[2][1] in ("", None)


def test_method_on_offline_device_is_404(registry_manager, make_device):
    from azure.iot.hub.models import CloudToDeviceMethod

    ident = make_device("offline")
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.invoke_device_method(
            ident.device_id,
            CloudToDeviceMethod(method_name="reboot", payload={}, response_timeout_in_seconds=5),
        )
    assert excinfo.value.response.status_code == 404


def test_method_on_unknown_device_is_404(registry_manager):
    from azure.iot.hub.models import CloudToDeviceMethod

    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.invoke_device_method(
            unique_id("ghost"), CloudToDeviceMethod(method_name="reboot", payload={})
        )
    assert excinfo.value.response.status_code == 404


def test_wrong_key_is_rejected(hub, make_device, make_client):
    from azure.iot.device.exceptions import CredentialError

    ident = make_device("badkey")
    client = make_client(hub.device_connection_string(ident.device_id, new_key()),
                         connection_retry=False)
    with pytest.raises(CredentialError):
        client.connect()
    assert not client.connected


def test_unknown_device_is_rejected(hub, make_client):
    from azure.iot.device.exceptions import CredentialError

    client = make_client(hub.device_connection_string(unique_id("nobody"), new_key()),
                         connection_retry=False)
    with pytest.raises(CredentialError):
        client.connect()
    assert not client.connected


def test_secondary_key_connects(make_device, make_client, hub):
    ident = make_device("second")
    client = make_client(hub.device_connection_string(ident.device_id, ident.secondary_key))
    client.connect()
    assert client.connected
    assert client.get_twin()["desired"]["$version"] >= 1


def test_disabled_device_is_rejected(registry_manager, make_device, make_client):
    from azure.iot.device.exceptions import CredentialError

    ident = make_device("disabled")
    dev = registry_manager.get_device(ident.device_id)
    registry_manager.update_device_with_sas(
        ident.device_id, dev.etag, ident.primary_key, ident.secondary_key, "disabled"
    )
    client = make_client(ident.connection_string, connection_retry=False)
    with pytest.raises(CredentialError):
        client.connect()
