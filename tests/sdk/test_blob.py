"""The official azure-storage-blob SDK, unmodified, against the hub's blob store:
through the storage connection string from hub.json (Shared Key) and through
service SAS URLs made with the SDK's own generate_*_sas."""

import datetime
import hashlib
import os

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
from azure.storage.blob import (
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ContentSettings,
    generate_blob_sas,
    generate_container_sas,
)

from conftest import unique_id


@pytest.fixture
def storage(hub):
    if not hub.storage:
        pytest.fail("hub.json has no `storage` section", pytrace=False)
    return hub.storage


@pytest.fixture
def service(storage, hub):
    return BlobServiceClient.from_connection_string(
        storage["connectionString"], connection_verify=str(hub.ca_path)
    )


def container_name():
    return unique_id("box").lower()


def soon(hours=1):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)


def test_connection_string_upload_list_download_ranges_delete(service):
    container = service.create_container(container_name())
    with pytest.raises(ResourceExistsError):
        service.create_container(container.container_name)
    data = os.urandom(300_000)
    container.upload_blob(
        "logs/2026/a.bin", data, content_settings=ContentSettings(content_type="application/x-test")
    )
    container.upload_blob("logs/2026/b.txt", b"hello")
    container.upload_blob("other.txt", b"x")
    # An empty blob: the SDK's first ranged GET gets 416 and it asks again without a range.
    container.upload_blob("empty", b"")
    assert container.get_blob_client("empty").download_blob().readall() == b""
    container.get_blob_client("empty").delete_blob()

    props = container.get_blob_client("logs/2026/a.bin").get_blob_properties()
    assert props.size == len(data)
    assert props.content_settings.content_type == "application/x-test"
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()

    names = [b.name for b in container.list_blobs(name_starts_with="logs/")]
    assert names == ["logs/2026/a.bin", "logs/2026/b.txt"]
    walked = [b.name for b in container.walk_blobs(delimiter="/")]
    assert walked == ["logs/", "other.txt"]
    paged = container.list_blobs(results_per_page=1).by_page()
    assert [len(list(p)) for p in paged] == [1, 1, 1]

    client = container.get_blob_client("logs/2026/a.bin")
    assert client.download_blob().readall() == data
    assert client.download_blob(offset=1000, length=5000).readall() == data[1000:6000]
    assert client.download_blob(offset=299_990).readall() == data[299_990:]

    with pytest.raises(ResourceExistsError):
        client.upload_blob(b"again", overwrite=False)
    with pytest.raises(ResourceModifiedError):
        client.upload_blob(
            b"again", overwrite=True, etag='"0x8D000000000001"',
            match_condition=MatchConditions.IfNotModified,
        )

    assert container.container_name in [c.name for c in service.list_containers(name_starts_with="box")]
    client.delete_blob()
    assert not client.exists()
    service.delete_container(container.container_name)


def test_multi_block_upload_with_small_single_put(storage, hub):
    name = container_name()
    service = BlobServiceClient.from_connection_string(
        storage["connectionString"],
        connection_verify=str(hub.ca_path),
        max_single_put_size=64 * 1024,
        max_block_size=64 * 1024,
        max_chunk_get_size=100 * 1024,
        max_single_get_size=100 * 1024,
    )
    container = service.create_container(name)
    data = os.urandom(1_000_000)
    container.upload_blob("big.bin", data, max_concurrency=2)
    client = container.get_blob_client("big.bin")
    assert client.get_blob_properties().size == len(data)
    # Downloads in chunks (ranged GETs) of 100 KiB.
    assert client.download_blob(max_concurrency=2).readall() == data
    service.delete_container(name)


def test_sas_urls(storage, hub, service):
    name = container_name()
    service.create_container(name)
    account, key = storage["accountName"], storage["accountKey"]
    endpoint = storage["blobEndpoint"]
    verify = str(hub.ca_path)

    write = generate_blob_sas(
        account, name, "dir/up.txt", account_key=key,
        permission=BlobSasPermissions(create=True, write=True), expiry=soon(),
    )
    BlobClient.from_blob_url(f"{endpoint}/{name}/dir/up.txt?{write}", connection_verify=verify).upload_blob(b"via sas")

    read = generate_blob_sas(
        account, name, "dir/up.txt", account_key=key,
        permission=BlobSasPermissions(read=True), expiry=soon(),
    )
    reader = BlobClient.from_blob_url(f"{endpoint}/{name}/dir/up.txt?{read}", connection_verify=verify)
    assert reader.download_blob().readall() == b"via sas"
    assert reader.download_blob(offset=4, length=3).readall() == b"sas"
    with pytest.raises(HttpResponseError) as denied:
        reader.delete_blob()
    assert denied.value.error_code == "AuthorizationPermissionMismatch"

    expired = generate_blob_sas(
        account, name, "dir/up.txt", account_key=key,
        permission=BlobSasPermissions(read=True), expiry=soon(-1),
    )
    with pytest.raises(HttpResponseError) as old:
        BlobClient.from_blob_url(f"{endpoint}/{name}/dir/up.txt?{expired}", connection_verify=verify).download_blob()
    assert old.value.error_code == "AuthenticationFailed"

    listing = generate_container_sas(
        account, name, account_key=key,
        permission=ContainerSasPermissions(read=True, list=True, delete=True), expiry=soon(),
    )
    container = ContainerClient.from_container_url(f"{endpoint}/{name}?{listing}", connection_verify=verify)
    assert [b.name for b in container.list_blobs()] == ["dir/up.txt"]
    container.get_blob_client("dir/up.txt").delete_blob()
    assert list(container.list_blobs()) == []
    service.delete_container(name)
