"""Service-side AMQP: C2D through IoTHubRegistryManager.send_c2d_message (uamqp) and
telemetry read back through the Event Hubs-compatible endpoint (azure-eventhub).

These tests are skipped (see conftest._amqp_gate) until hub.json reports a
non-null ports.amqp that accepts connections on 5671.
"""

import json
import queue
import threading

import pytest

pytestmark = pytest.mark.amqp


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _text_dict(d):
    return {_text(k): _text(v) for k, v in (d or {}).items()}


def test_c2d_message_to_connected_device(registry_manager, connected_device):
    ident, client = connected_device
    received = queue.Queue()
    client.on_message_received = received.put  # subscribes to devices/{id}/messages/devicebound/#

    registry_manager.send_c2d_message(
        ident.device_id,
        json.dumps({"cmd": "on", "level": 7}),
        properties={
            "contentType": "application/json",
            "contentEncoding": "utf-8",
            "messageId": "c2d-mid-1",
            "correlationId": "c2d-cid-1",
            "color": "blue",
            "with space": "a/b&c=d",
        },
    )
    msg = received.get(timeout=20)
    assert json.loads(msg.data) == {"cmd": "on", "level": 7}
    assert msg.message_id == "c2d-mid-1"
    assert msg.correlation_id == "c2d-cid-1"
    assert msg.content_type == "application/json"
    assert msg.content_encoding == "utf-8"
    assert msg.custom_properties["color"] == "blue"
    assert msg.custom_properties["with space"] == "a/b&c=d"


def test_c2d_message_queued_for_offline_device(registry_manager, make_device, make_client):
    ident = make_device("c2dq")
    registry_manager.send_c2d_message(ident.device_id, "queued-1", properties={"n": "1"})
    registry_manager.send_c2d_message(ident.device_id, "queued-2", properties={"n": "2"})

    client = make_client(ident.connection_string)
    received = queue.Queue()
    client.connect()
    client.on_message_received = received.put
    got = [received.get(timeout=20), received.get(timeout=20)]
    assert [m.data for m in got] == [b"queued-1", b"queued-2"]
    assert [m.custom_properties["n"] for m in got] == ["1", "2"]
    assert all(m.message_id for m in got), "the service SDK always sets a message id"


def test_c2d_to_unknown_device_fails(registry_manager):
    from conftest import unique_id

    with pytest.raises(Exception):
        registry_manager.send_c2d_message(unique_id("ghost"), "nobody home")


def _first_event(hub, device_id, client_kwargs=None, **receive_kwargs):
    """Reads the Event Hubs-compatible endpoint from the start until an event of
    `device_id` arrives; returns (event, partition_context.last_enqueued_event_properties)."""
    from azure.eventhub import EventHubConsumerClient

    consumer = EventHubConsumerClient.from_connection_string(
        hub.eventhub_connection_string,
        consumer_group="$Default",
        connection_verify=str(hub.ca_path),
        **(client_kwargs or {}),
    )
    found = queue.Queue()

    def on_event(partition_context, event):
        if event is None:
            return
        dev = _text_dict(event.system_properties).get("iothub-connection-device-id")
        if dev == device_id:
            found.put((event, partition_context.last_enqueued_event_properties))

    worker = threading.Thread(
        target=consumer.receive,
        kwargs={"on_event": on_event, "starting_position": "-1", "max_wait_time": 1, **receive_kwargs},
        daemon=True,
    )
    worker.start()
    try:
        return found.get(timeout=30)
    finally:
        consumer.close()
        worker.join(timeout=10)


@pytest.mark.eventhub
def test_telemetry_readable_from_event_hub_endpoint(hub, connected_device):
    from azure.iot.device import Message

    ident, client = connected_device
    msg = Message('{"temperature": 22.25}', content_encoding="utf-8", content_type="application/json")
    msg.message_id = "tele-mid-1"
    msg.custom_properties["alert"] = "high temp"
    client.send_message(msg)

    event, _ = _first_event(hub, ident.device_id)
    assert json.loads(event.body_as_str()) == {"temperature": 22.25}
    assert event.message_id == "tele-mid-1"
    assert event.content_type == "application/json"
    assert _text_dict(event.properties)["alert"] == "high temp"
    system = _text_dict(event.system_properties)
    assert system["iothub-connection-device-id"] == ident.device_id
    assert "iothub-enqueuedtime" in system


@pytest.mark.eventhub
def test_last_enqueued_event_properties_are_tracked(hub, connected_device):
    from azure.iot.device import Message

    ident, client = connected_device
    for i in range(3):
        client.send_message(Message(f"metric-{i}"))

    event, last = _first_event(hub, ident.device_id, track_last_enqueued_event_properties=True)
    assert last, "the receiver asked for runtime metrics and got none"
    assert last["sequence_number"] >= event.sequence_number + 2, last
    assert last["offset"] == str(last["sequence_number"]), last
    assert last["enqueued_time"] is not None and last["retrieval_time"] is not None, last


@pytest.mark.eventhub
def test_telemetry_readable_over_amqp_websockets(hub, connected_device):
    """pyamqp over WebSockets: wss://{host}:443/$servicebus/websocket, subprotocol AMQPWSB10."""
    from azure.eventhub import TransportType
    from azure.iot.device import Message

    if int(hub.ports["https"]) != 443:
        pytest.skip("azure-eventhub dials 443 for AMQP over WebSockets; the hub's HTTPS is elsewhere")
    ident, client = connected_device
    client.send_message(Message("over websockets"))
    event, _ = _first_event(
        hub, ident.device_id, client_kwargs={"transport_type": TransportType.AmqpOverWebsocket}
    )
    assert event.body_as_str() == "over websockets"

