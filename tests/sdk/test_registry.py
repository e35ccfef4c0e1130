"""Service-side REST API through azure-iot-hub's IoTHubRegistryManager."""

import pytest
from msrest.exceptions import HttpOperationError

from conftest import new_key, unique_id


def status_of(excinfo) -> int:
    return excinfo.value.response.status_code


def test_create_get_list_delete_device(registry_manager):
    device_id = unique_id("reg")
    pk, sk = new_key(), new_key()

    created = registry_manager.create_device_with_sas(device_id, pk, sk, "enabled")
    try:
        assert created.device_id == device_id
        assert created.status == "enabled"
        assert created.authentication.type == "sas"
        assert created.authentication.symmetric_key.primary_key == pk
        assert created.authentication.symmetric_key.secondary_key == sk
        assert created.etag, "a created device must carry an etag"
        assert created.generation_id, "a created device must carry a generationId"
        assert created.capabilities is not None and created.capabilities.iot_edge is False

        got = registry_manager.get_device(device_id)
        assert got.device_id == device_id
        assert got.authentication.symmetric_key.primary_key == pk
        assert got.etag == created.etag
        assert got.generation_id == created.generation_id
        assert got.connection_state == "Disconnected"

        listed = registry_manager.get_devices()
        ids = [d.device_id for d in listed]
        assert device_id in ids
        mine = next(d for d in listed if d.device_id == device_id)
        assert mine.authentication.symmetric_key.primary_key == pk
    finally:
        registry_manager.delete_device(device_id)

    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.get_device(device_id)
    assert status_of(excinfo) == 404
    assert device_id not in [d.device_id for d in registry_manager.get_devices()]


def test_create_existing_device_conflicts(registry_manager, make_device):
    ident = make_device("dup")
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.create_device_with_sas(ident.device_id, new_key(), new_key(), "enabled")
    assert status_of(excinfo) == 409


def test_missing_device_is_404(registry_manager):
    missing = unique_id("missing")
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.get_device(missing)
    assert status_of(excinfo) == 404
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.delete_device(missing)
    assert status_of(excinfo) == 404
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.get_twin(missing)
    assert status_of(excinfo) == 404


def test_update_device_with_etag(registry_manager, make_device):
    ident = make_device("upd")
    dev = registry_manager.get_device(ident.device_id)
    new_pk = new_key()
    updated = registry_manager.update_device_with_sas(
        ident.device_id, dev.etag, new_pk, ident.secondary_key, "disabled"
    )
    assert updated.status == "disabled"
    assert updated.authentication.symmetric_key.primary_key == new_pk
    assert updated.etag != dev.etag
    assert updated.generation_id == dev.generation_id
    # The old etag is now stale.
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.update_device_with_sas(
            ident.device_id, dev.etag, new_key(), ident.secondary_key, "enabled"
        )
    assert status_of(excinfo) == 412


def test_new_device_twin(registry_manager, make_device):
    ident = make_device("twin")
    twin = registry_manager.get_twin(ident.device_id)
    assert twin.device_id == ident.device_id
    assert twin.etag
    assert twin.status == "enabled"
    assert twin.connection_state == "Disconnected"
    assert twin.authentication_type == "sas"
    assert isinstance(twin.version, int) and twin.version >= 1
    assert twin.tags in (None, {})
    desired, reported = twin.properties.desired, twin.properties.reported
    assert isinstance(desired["$version"], int) and desired["$version"] >= 1
    assert isinstance(reported["$version"], int) and reported["$version"] >= 1
    assert {k for k in desired if not k.startswith("$")} == set()
    assert {k for k in reported if not k.startswith("$")} == set()


def test_update_twin_tags_and_desired(registry_manager, make_device):
    from azure.iot.hub.models import Twin, TwinProperties

    ident = make_device("tags")
    before = registry_manager.get_twin(ident.device_id)
    patch = Twin(tags={"site": "lab", "floor": 3}, properties=TwinProperties(desired={"mode": "eco"}))
    after = registry_manager.update_twin(ident.device_id, patch, before.etag)
    assert after.device_id == ident.device_id
    assert after.tags == {"site": "lab", "floor": 3}
    assert after.properties.desired["mode"] == "eco"
    assert after.properties.desired["$version"] == before.properties.desired["$version"] + 1
    assert after.etag != before.etag

    # A null member removes it; nested objects merge.
    after2 = registry_manager.update_twin(
        ident.device_id, Twin(tags={"floor": None, "zone": {"a": 1}}), after.etag
    )
    assert after2.tags == {"site": "lab", "zone": {"a": 1}}

    # Stale etag -> 412 Precondition Failed.
    with pytest.raises(HttpOperationError) as excinfo:
        registry_manager.update_twin(ident.device_id, Twin(tags={"x": 1}), before.etag)
    assert status_of(excinfo) == 412

    # Wildcard etag (the SDK default) always applies.
    after3 = registry_manager.update_twin(ident.device_id, Twin(tags={"x": 1}))
    assert after3.tags["x"] == 1

    again = registry_manager.get_twin(ident.device_id)
    assert again.etag == after3.etag
    assert again.tags == {"site": "lab", "zone": {"a": 1}, "x": 1}
    assert again.properties.desired["mode"] == "eco"


def test_query_devices(registry_manager, make_device):
    from azure.iot.hub.models import QuerySpecification

    ident = make_device("query")
    result = registry_manager.query_iot_hub(
        QuerySpecification(query=f"SELECT * FROM devices WHERE deviceId = '{ident.device_id}'")
    )
    assert result.type is not None and result.type.lower() == "twin"
    assert not result.continuation_token
    assert len(result.items) == 1
    assert result.items[0].device_id == ident.device_id


def test_query_projection_top_paging_and_group_by(registry_manager, make_device):
    """Projection and aggregate rows reach azure-iot-hub's [Twin] deserializer intact:
    known keys on the Twin, the rest in additional_properties."""
    from azure.iot.hub.models import QuerySpecification, Twin

    devices = [make_device("qp") for _ in range(3)]
    for i, ident in enumerate(devices):
        before = registry_manager.get_twin(ident.device_id)
        site = "north" if i < 2 else "south"
        registry_manager.update_twin(ident.device_id, Twin(tags={"site": site, "n": i}), before.etag)
    ids = sorted(d.device_id for d in devices)
    where = "WHERE deviceId IN [" + ", ".join(f"'{d}'" for d in ids) + "]"

    def query(sql, **kwargs):
        return registry_manager.query_iot_hub(QuerySpecification(query=sql), **kwargs)

    # A projection, one row per page, following the continuation token.
    rows, token = [], None
    while True:
        page = query(f"SELECT deviceId, tags.site AS place FROM devices {where}",
                     continuation_token=token, max_item_count=1)
        assert page.type == "raw"
        assert len(page.items) <= 1
        rows += [(r.device_id, r.additional_properties["place"]) for r in page.items]
        token = page.continuation_token
        if not token:
            break
    assert [r[0] for r in rows] == ids
    assert sorted(r[1] for r in rows) == ["north", "north", "south"]

    top = query(f"SELECT TOP 2 * FROM devices WHERE STARTSWITH(deviceId, 'qp-') AND tags.n NIN [7] "
                + where.replace("WHERE", "AND"))
    assert [t.device_id for t in top.items] == ids[:2]

    groups = query(f"SELECT tags.site AS site, COUNT() AS n FROM devices {where} GROUP BY tags.site")
    counts = {g.additional_properties["site"]: g.additional_properties["n"] for g in groups.items}
    assert counts == {"north": 2, "south": 1}

    total = query(f"SELECT COUNT() AS numberOfDevices FROM devices {where}")
    assert total.items[0].additional_properties == {"numberOfDevices": 3}

    with pytest.raises(HttpOperationError) as excinfo:
        query("SELECT * FROM devices ORDER BY deviceId")
    assert status_of(excinfo) == 400
