"""Fixtures for the official Azure IoT SDK conformance suite.

The suite starts `hubtui hub` once per session with a temporary --data-dir,
waits for DIR/hub.json (written only after every listener is bound), and
points the unmodified official SDKs at it:

* azure-iot-device (MQTT over TLS) always dials port 8883 (hard-coded in
  azure/iot/device/common/mqtt_transport.py), so the hub MUST listen on 8883.
* azure-iot-hub's AMQP client (send_c2d_message) always dials port 5671.
* azure-iot-hub's REST client uses "https://" + HostName, i.e. port 443 unless
  HostName carries ":port". By default the hub is started on 443 (CI runs as
  root); set HUBTUI_SDK_HTTPS_PORT to use another port, in which case the
  service connection string is given HostName=localhost:PORT.

If a required port cannot be bound the whole suite is skipped with a message,
or fails when HUBTUI_SDK_REQUIRE_PORTS=1 (set by .ci/run).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MQTT_PORT = 8883  # hard-coded in azure-iot-device (TCP); 443 with websockets
AMQP_PORT = 5671  # hard-coded in azure-iot-hub's uamqp client
DEFAULT_HTTPS_PORT = 443  # azure-iot-hub REST: "https://" + HostName
HUB_START_TIMEOUT = float(os.environ.get("HUBTUI_SDK_START_TIMEOUT", "60"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "amqp: needs the hub's AMQP service endpoint (skipped unless hub.json "
        "has a non-null ports.amqp that accepts connections)",
    )
    config.addinivalue_line(
        "markers",
        "eventhub: needs eventHubCompatibleConnectionString in hub.json (implies amqp)",
    )


# --------------------------------------------------------------------------
# helpers


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05):
    """Poll predicate until it returns a truthy value; return it or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _port_problem(port: int) -> Optional[str]:
    """Return why `port` cannot be bound on loopback, or None if it can."""
    for family, addr in ((socket.AF_INET, "127.0.0.1"),):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError as e:
            return f"{addr}:{port}: {e.strerror or e}"
        finally:
            s.close()
    return None


def _accepts_tcp(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _replace_host(conn_str: str, new_host: str) -> str:
    parts = []
    for part in conn_str.split(";"):
        if part.startswith("HostName="):
            part = "HostName=" + new_host
        parts.append(part)
    return ";".join(parts)


def _conn_str_value(conn_str: str, key: str) -> Optional[str]:
    for part in conn_str.split(";"):
        k, sep, v = part.partition("=")
        if sep and k == key:
            return v
    return None


@dataclass
class Hub:
    data_dir: Path
    log_path: Path
    info: dict
    host_name: str
    service_connection_string: str
    ca_path: Path
    ca_pem: str
    ports: dict
    eventhub_connection_string: Optional[str]
    process: subprocess.Popen = field(repr=False)
    # The blob store's account (hub.json `storage`): accountName, accountKey,
    # blobEndpoint and the storage connection string the storage SDKs take.
    storage: Optional[dict] = None
    # The CA registered on the hub before it started (`hubtui hub ca add`), for X.509
    # CA-signed devices; None with the reason in x509_problem when it could not be made.
    x509_ca: Optional[object] = None
    x509_dir: Optional[Path] = None
    x509_problem: Optional[str] = None

    def device_connection_string(self, device_id: str, key: str) -> str:
        return f"HostName={self.host_name};DeviceId={device_id};SharedAccessKey={key}"

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def amqp_problem(self) -> Optional[str]:
        port = self.ports.get("amqp")
        if port is None:
            return "hub.json has ports.amqp = null (AMQP endpoint not served yet)"
        if not _accepts_tcp("localhost", int(port)):
            return f"AMQP port {port} does not accept connections"
        if int(port) != AMQP_PORT:
            return f"AMQP is on port {port}, but azure-iot-hub's C2D client only dials {AMQP_PORT}"
        return None


def _hub_binary() -> Path:
    env = os.environ.get("HUBTUI_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "hubtui"
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    return path


def _skip_or_fail(msg: str):
    if os.environ.get("HUBTUI_SDK_REQUIRE_PORTS") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


# --------------------------------------------------------------------------
# fixtures


def _register_test_ca(binary: Path, data_dir: Path):
    """Makes a test CA and registers it in the hub's data dir: (ca, dir, problem)."""
    import x509_certs

    problem = x509_certs.openssl_missing()
    if problem:
        return None, None, problem
    x509_dir = data_dir.parent / "x509"
    ca = x509_certs.make_ca(x509_dir)
    done = subprocess.run(
        [str(binary), "hub", "ca", "add", "sdk-test-ca", "--pem", str(ca.cert),
         "--data-dir", str(data_dir)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        return None, None, f"`hubtui hub ca add` failed: {done.stderr.strip()}"
    return ca, x509_dir, None


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    binary = _hub_binary()
    if not binary.is_file():
        pytest.fail(
            f"hubtui binary not found at {binary}: build it (cargo build) or set HUBTUI_BIN",
            pytrace=False,
        )

    https_port = int(os.environ.get("HUBTUI_SDK_HTTPS_PORT", DEFAULT_HTTPS_PORT))
    problems = []
    for name, port in (("mqtt", MQTT_PORT), ("amqp", AMQP_PORT), ("https", https_port)):
        why = _port_problem(port)
        if why:
            problems.append(f"{name} port {port} ({why})")
    if problems:
        _skip_or_fail(
            "the official SDKs need the hub on fixed ports (MQTT 8883, AMQP 5671, "
            "HTTPS 443 or HUBTUI_SDK_HTTPS_PORT); cannot bind: "
            + "; ".join(problems)
            + ". Run as root (443), set HUBTUI_SDK_HTTPS_PORT=8443, or free the ports."
        )

    data_dir = tmp_path_factory.mktemp("hubtui-data")
    log_path = data_dir.parent / "hubtui-hub.log"
    hub_json = data_dir / "hub.json"
    cmd = [
        str(binary),
        "hub",
        "--data-dir",
        str(data_dir),
        "--mqtt-port",
        str(MQTT_PORT),
        "--amqp-port",
        str(AMQP_PORT),
        "--https-port",
        str(https_port),
    ]
    # A running hub holds its database, so its CA certificates are registered first.
    x509_ca, x509_dir, x509_problem = _register_test_ca(binary, data_dir)

    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def read_tail() -> str:
        log.flush()
        try:
            return "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        except OSError:
            return "(no log)"

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()

    info = None
    deadline = time.monotonic() + HUB_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = read_tail()
            stop()
            pytest.fail(
                f"`{' '.join(cmd)}` exited with {proc.returncode} before writing hub.json:\n{tail}",
                pytrace=False,
            )
        if hub_json.is_file():
            try:
                info = json.loads(hub_json.read_text())
                break
            except (json.JSONDecodeError, OSError):
                pass  # still being written; hub.json should be written atomically
        time.sleep(0.1)
    if info is None:
        tail = read_tail()
        stop()
        pytest.fail(
            f"hub.json did not appear in {data_dir} within {HUB_START_TIMEOUT:.0f}s:\n{tail}",
            pytrace=False,
        )

    try:
        for key in ("hostName", "serviceConnectionString", "caCertificate", "ports"):
            assert key in info, f"hub.json lacks {key!r}: {info}"
        ports = info["ports"]
        assert ports.get("mqtt") == MQTT_PORT, f"hub.json ports.mqtt = {ports.get('mqtt')}"
        assert ports.get("https") == https_port, f"hub.json ports.https = {ports.get('https')}"
        ca_path = Path(info["caCertificate"])
        if not ca_path.is_absolute():
            ca_path = data_dir / ca_path
        ca_pem = ca_path.read_text()
        assert "BEGIN CERTIFICATE" in ca_pem, f"{ca_path} is not a PEM certificate"
        host_name = info["hostName"]
        service_cs = info["serviceConnectionString"]
        assert _conn_str_value(service_cs, "SharedAccessKeyName"), service_cs
        assert _conn_str_value(service_cs, "SharedAccessKey")
        cs_host = _conn_str_value(service_cs, "HostName")
        assert cs_host and cs_host.split(":")[0] == host_name, service_cs
        if https_port != 443 and ":" not in cs_host:
            # azure-iot-hub builds its base URL as "https://" + HostName.
            service_cs = _replace_host(service_cs, f"{host_name}:{https_port}")
    except BaseException:
        tail = read_tail()
        stop()
        raise AssertionError(f"hub started but hub.json is unusable. Hub log:\n{tail}")

    # TLS trust, the way an SDK user would do it:
    # * REST (azure-iot-hub -> msrest -> requests): REQUESTS_CA_BUNDLE.
    # * MQTT (azure-iot-device): server_verification_cert=<PEM text> per client.
    # * AMQP (uamqp, pyamqp) read certifi.where(); uamqp has no other hook when
    #   used through IoTHubRegistryManager, so point certifi.where() at a bundle
    #   of the normal roots plus the hub CA. This must happen before any
    #   IoTHubRegistryManager is built (its constructor loads the CA file).
    import certifi

    bundle = data_dir.parent / "ca-bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + ca_pem)
    saved_env = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    saved_where = certifi.where
    certifi.where = lambda: str(bundle)

    hub_obj = Hub(
        data_dir=data_dir,
        log_path=log_path,
        info=info,
        host_name=host_name,
        service_connection_string=service_cs,
        ca_path=ca_path,
        ca_pem=ca_pem,
        ports=ports,
        eventhub_connection_string=info.get("eventHubCompatibleConnectionString"),
        process=proc,
        storage=info.get("storage"),
        x509_ca=x509_ca,
        x509_dir=x509_dir,
        x509_problem=x509_problem,
    )
    try:
        yield hub_obj
    finally:
        certifi.where = saved_where
        if saved_env is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved_env
        alive = proc.poll() is None
        stop()
        if not alive:
            print(f"\nWARNING: the hub exited during the suite (code {proc.returncode}):\n{read_tail()}")
        if os.environ.get("HUBTUI_SDK_KEEP_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _amqp_gate(request):
    """Skip amqp/eventhub-marked tests unless the hub serves AMQP."""
    if request.node.get_closest_marker("amqp") or request.node.get_closest_marker("eventhub"):
        hub = request.getfixturevalue("hub")
        why = hub.amqp_problem()
        if why:
            pytest.skip(why)
        if request.node.get_closest_marker("eventhub") and not hub.eventhub_connection_string:
            pytest.skip("hub.json has no eventHubCompatibleConnectionString yet")


@pytest.fixture(autouse=True)
def _hub_still_running(request):
    hub = request.getfixturevalue("hub") if "hub" in request.fixturenames else None
    yield
    if hub is not None:
        assert hub.process.poll() is None, (
            f"the hub process died (exit {hub.process.returncode}):\n{hub.log_tail()}"
        )


@pytest.fixture(scope="session")
def registry_manager(hub):
    from azure.iot.hub import IoTHubRegistryManager

    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    yield rm
    try:
        rm.amqp_svc_client.disconnect_sync()
    except Exception:
        pass


@dataclass
class DeviceIdentity:
    device_id: str
    primary_key: str
    secondary_key: str
    connection_string: str
    created: object  # azure.iot.hub.protocol.models.Device returned by create


@pytest.fixture
def make_device(hub, registry_manager):
    """Create SAS devices through IoTHubRegistryManager; delete them afterwards."""
    created = []

    def _make(prefix: str = "sdk") -> DeviceIdentity:
        device_id = unique_id(prefix)
        pk, sk = new_key(), new_key()
        dev = registry_manager.create_device_with_sas(device_id, pk, sk, "enabled")
        created.append(device_id)
        return DeviceIdentity(device_id, pk, sk, hub.device_connection_string(device_id, pk), dev)

    yield _make
    for device_id in created:
        try:
            registry_manager.delete_device(device_id)
        except Exception:
            pass


@pytest.fixture
def make_client(hub):
    """Build IoTHubDeviceClient instances that trust the hub CA; shut them down afterwards."""
    from azure.iot.device import IoTHubDeviceClient

    clients = []

    def _make(connection_string: str, **kwargs):
        client = IoTHubDeviceClient.create_from_connection_string(
            connection_string, server_verification_cert=hub.ca_pem, **kwargs
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
def connected_device(make_device, make_client):
    """A registered device with a connected IoTHubDeviceClient: (identity, client)."""
    ident = make_device("dev")
    client = make_client(ident.connection_string)
    client.connect()
    assert client.connected
    return ident, client
