"""IoT Plug and Play digital twins: azure-iot-hub's DigitalTwinClient against a device that
announces a model id with azure-iot-device (product_info = the DTMI)."""

import queue

import pytest
from msrest.exceptions import HttpOperationError

MODEL = "dtmi:com:example:TemperatureController;1"


@pytest.fixture
def digital_twins(hub):
    from azure.iot.hub import DigitalTwinClient

    return DigitalTwinClient(hub.service_connection_string)


@pytest.fixture
def pnp_device(make_device, make_client):
    """A registered device connected as a PnP device: (identity, client)."""
    ident = make_device("pnp")
    # product_info starting with "dtmi" makes the SDK send model-id in the MQTT username.
    client = make_client(ident.connection_string, product_info=MODEL)
    client.connect()
    return ident, client


def test_get_and_update_digital_twin(digital_twins, pnp_device):
    ident, client = pnp_device
    patches = queue.Queue()
    client.on_twin_desired_properties_patch_received = patches.put
    client.patch_twin_reported_properties(
        {"serialNumber": "alwinexlepaho8329",
         "thermostat1": {"__t": "c", "maxTempSinceLastReboot": 25.3}}
    )

    dt = digital_twins.get_digital_twin(ident.device_id)
    assert dt["$dtId"] == ident.device_id
    assert dt["$metadata"]["$model"] == MODEL
    assert dt["serialNumber"] == "alwinexlepaho8329"
    assert "lastUpdateTime" in dt["$metadata"]["serialNumber"]
    assert dt["thermostat1"]["maxTempSinceLastReboot"] == 25.3
    assert "__t" not in dt["thermostat1"]

    # update_digital_twin returns nothing (the hub answers 202); the device gets the patch.
    assert digital_twins.update_digital_twin(
        ident.device_id,
        [{"op": "add", "path": "/thermostat1/targetTemperature", "value": 21.4}],
    ) is None
    patch = patches.get(timeout=10)
    assert patch["thermostat1"] == {"__t": "c", "targetTemperature": 21.4}
    version = patch["$version"]

    # The device acknowledges as PnP devices do; the digital twin shows the sync state.
    client.patch_twin_reported_properties(
        {"thermostat1": {"__t": "c", "targetTemperature":
                         {"value": 21.4, "ac": 200, "av": version, "ad": "done"}}}
    )
    dt = digital_twins.get_digital_twin(ident.device_id)
    assert dt["thermostat1"]["targetTemperature"] == 21.4
    meta = dict(dt["thermostat1"]["$metadata"]["targetTemperature"])
    assert isinstance(meta.pop("lastUpdateTime"), str)
    assert meta == {"desiredValue": 21.4, "desiredVersion": version, "ackVersion": version,
                    "ackCode": 200, "ackDescription": "done"}

    # The ETag of a read is the If-Match of an update; a stale one is 412.
    raw = digital_twins.protocol.digital_twin.get_digital_twin(ident.device_id, raw=True)
    etag = raw.headers["ETag"]
    ops = [{"op": "replace", "path": "/thermostat1/targetTemperature", "value": 19}]
    digital_twins.update_digital_twin(ident.device_id, ops, etag)
    with pytest.raises(HttpOperationError) as e:
        digital_twins.update_digital_twin(ident.device_id, ops, etag)
    assert e.value.response.status_code == 412
    assert patches.get(timeout=10)["thermostat1"]["targetTemperature"] == 19


def test_a_bad_patch_is_a_400(digital_twins, pnp_device):
    ident, _ = pnp_device
    with pytest.raises(HttpOperationError) as e:
        digital_twins.update_digital_twin(
            ident.device_id, [{"op": "add", "path": "/not-a-name", "value": 1}]
        )
    assert e.value.response.status_code == 400
    assert "not a DTDL name" in e.value.response.text


def test_commands_invoke_the_devices_methods(digital_twins, pnp_device):
    from azure.iot.device import MethodResponse

    ident, client = pnp_device

    def on_method(request):
        status = 404 if request.name == "missing" else 200
        client.send_method_response(MethodResponse.create_from_method_request(
            request, status, {"name": request.name, "payload": request.payload}))

    client.on_method_request_received = on_method

    result = digital_twins.invoke_command(
        ident.device_id, "reboot", {"delay": 1}, response_timeout_in_seconds=10
    )
    assert result == {"name": "reboot", "payload": {"delay": 1}}

    # A component command is the method "component*command" on the device.
    result = digital_twins.invoke_component_command(
        ident.device_id, "thermostat1", "getMaxMinReport", "2020-07-17T00:00:00Z",
        connect_timeout_in_seconds=5, response_timeout_in_seconds=10,
    )
    assert result == {"name": "thermostat1*getMaxMinReport", "payload": "2020-07-17T00:00:00Z"}

    # The device's own status travels in x-ms-command-statuscode, with HTTP 200.
    raw = digital_twins.protocol.digital_twin.invoke_root_level_command(
        ident.device_id, "missing", {}, response_timeout_in_seconds=10, raw=True
    )
    assert raw.headers["x-ms-command-statuscode"] == 404
    assert raw.headers["x-ms-request-id"]
    assert raw.output == {"name": "missing", "payload": {}}


def test_a_command_to_an_offline_device_is_a_404(digital_twins, make_device):
    ident = make_device("pnp-offline")
    with pytest.raises(HttpOperationError) as e:
        digital_twins.invoke_command(ident.device_id, "reboot", {}, response_timeout_in_seconds=5)
    assert e.value.response.status_code == 404
