"""Device file upload with azure-iot-device, unmodified: get_storage_info_for_blob hands
out a SAS URI on the hub's blob store, azure-storage-blob uploads through it, and
notify_blob_upload_status reports the outcome; the blob is then in the upload container."""

from azure.storage.blob import BlobClient, BlobServiceClient


def test_get_storage_info_upload_and_notify(hub, make_device, make_client):
    ident = make_device("upl")
    client = make_client(ident.connection_string)
    client.connect()

    info = client.get_storage_info_for_blob("logs/today.txt")
    assert info["blobName"] == f"{ident.device_id}/logs/today.txt"
    assert info["sasToken"].startswith("?")
    url = "https://{}/{}/{}{}".format(
        info["hostName"], info["containerName"], info["blobName"], info["sasToken"]
    )
    data = b"line one\nline two\n" * 100
    BlobClient.from_blob_url(url, connection_verify=str(hub.ca_path)).upload_blob(data)
    client.notify_blob_upload_status(info["correlationId"], True, 200, "uploaded")

    service = BlobServiceClient.from_connection_string(
        hub.storage["connectionString"], connection_verify=str(hub.ca_path)
    )
    blob = service.get_blob_client(info["containerName"], info["blobName"])
    assert blob.download_blob().readall() == data

    # A failed upload is reported the same way, and the hub takes it.
    failed = client.get_storage_info_for_blob("never.bin")
    client.notify_blob_upload_status(failed["correlationId"], False, 500, "disk full")
