"""Device side over MQTT over WebSockets (azure-iot-device, websockets=True).

The SDK then dials wss://{HostName}:443/$iothub/websocket (port hard-coded in
azure/iot/device/common/mqtt_transport.py) with subprotocol "mqtt", so these
tests need the hub's HTTPS port on 443.
"""

import queue

import pytest

from conftest import wait_for


@pytest.fixture
def ws_device(hub, make_device, make_client):
    if int(hub.ports["https"]) != 443:
        pytest.skip(
            f"MQTT over WebSockets dials port 443; the hub's HTTPS port is {hub.ports['https']}"
        )
    ident = make_device("ws")
    client = make_client(ident.connection_string, websockets=True)
    client.connect()
    assert client.connected
    return ident, client


def test_websocket_telemetry_and_connection_state(registry_manager, ws_device):
    from azure.iot.device import Message

    ident, client = ws_device
    twin = wait_for(
        lambda: (t := registry_manager.get_twin(ident.device_id)).connection_state == "Connected" and t,
        timeout=10,
    )
    assert twin, "twin.connectionState never became 'Connected'"

    msg = Message('{"temperature": 20.0}', content_encoding="utf-8", content_type="application/json")
    msg.message_id = "ws-mid-1"
    msg.custom_properties["transport"] = "websockets"
    # Returns once the hub has PUBACKed the QoS 1 PUBLISH.
    client.send_message(msg)
    for i in range(3):
        client.send_message(f"ws {i}")
    assert client.connected

    client.disconnect()
    twin = wait_for(
        lambda: (t := registry_manager.get_twin(ident.device_id)).connection_state == "Disconnected" and t,
        timeout=10,
    )
    assert twin, "twin.connectionState never went back to 'Disconnected'"


def test_websocket_direct_method(registry_manager, ws_device):
    from azure.iot.device import MethodResponse
    from azure.iot.hub.models import CloudToDeviceMethod

    ident, client = ws_device
    seen = []

    def on_method(request):
        seen.append((request.name, request.payload))
        client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, {"via": "websockets"})
        )

    client.on_method_request_received = on_method
    result = registry_manager.invoke_device_method(
        ident.device_id,
        CloudToDeviceMethod(method_name="ping", payload={"n": 1}, response_timeout_in_seconds=30),
    )
    assert result.status == 200
    assert result.payload == {"via": "websockets"}
    assert seen == [("ping", {"n": 1})]


def test_websocket_twin(registry_manager, ws_device):
    ident, client = ws_device
    twin = client.get_twin()
    service = registry_manager.get_twin(ident.device_id)
    assert twin["desired"]["$version"] == service.properties.desired["$version"]

    client.patch_twin_reported_properties({"transport": "websockets"})
    reported = wait_for(
        lambda: registry_manager.get_twin(ident.device_id).properties.reported.get("transport"),
        timeout=10,
    )
    assert reported == "websockets"


@pytest.mark.amqp
def test_websocket_c2d(registry_manager, ws_device):
    ident, client = ws_device
    received = queue.Queue()
    client.on_message_received = received.put  # subscribes to devicebound/#
    registry_manager.send_c2d_message(ident.device_id, "over websockets", {"k": "v"})
    msg = received.get(timeout=15)
    assert msg.data == b"over websockets"
    assert msg.custom_properties.get("k") == "v"
