"""IoT Edge through azure-iot-hub: an edge device created with its scope and system
modules, a leaf device created under it, and a deployment manifest applied with
IoTHubConfigurationManager.apply_configuration_on_edge_device."""

import pytest
from msrest.exceptions import HttpOperationError

from conftest import new_key, unique_id


@pytest.fixture
def configuration_manager(hub):
    from azure.iot.hub import IoTHubConfigurationManager

    return IoTHubConfigurationManager.from_connection_string(hub.service_connection_string)


def test_edge_device_scope_children_and_deployment(registry_manager, configuration_manager):
    from azure.iot.hub.models import ConfigurationContent

    edge_id, leaf_id = unique_id("edge"), unique_id("leaf")
    edge = registry_manager.create_device_with_sas(edge_id, new_key(), new_key(), "enabled", iot_edge=True)
    try:
        assert edge.capabilities.iot_edge is True
        assert edge.device_scope == f"ms-azure-iot-edge://{edge_id}-{edge.generation_id}"
        modules = sorted(m.module_id for m in registry_manager.get_modules(edge_id))
        assert modules == ["$edgeAgent", "$edgeHub"]

        leaf = registry_manager.create_device_with_sas(
            leaf_id, new_key(), new_key(), "enabled", device_scope=edge.device_scope
        )
        assert leaf.device_scope == edge.device_scope
        assert leaf.parent_scopes == [edge.device_scope]

        content = ConfigurationContent(
            modules_content={
                "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {}}},
                "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
                "probe": {"properties.desired": {"interval": 7}},
            }
        )
        configuration_manager.apply_configuration_on_edge_device(edge_id, content)
        twin = registry_manager.get_module_twin(edge_id, "probe")
        assert twin.properties.desired["interval"] == 7
        agent = registry_manager.get_module_twin(edge_id, "$edgeAgent")
        assert agent.properties.desired["schemaVersion"] == "1.1"

        with pytest.raises(HttpOperationError) as excinfo:
            configuration_manager.apply_configuration_on_edge_device(leaf_id, content)
        assert excinfo.value.response.status_code == 400
    finally:
        for device_id in (leaf_id, edge_id):
            try:
                registry_manager.delete_device(device_id)
            except HttpOperationError:
                pass
