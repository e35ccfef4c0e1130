#!/usr/bin/env bash
# Compares the local hub with mosquitto on this machine, with the same load generator in
# the same run: TLS and QoS 1 on both, SAS auth on the hub, none on mosquitto.
#   ingest: PUBACKed publishes (benches/mqtt_ingest.rs; MQTT_INGEST_* variables)
#   e2e:    messages delivered end to end: the hub to hubtui's AMQP reader, mosquitto to
#           one subscriber (benches/telemetry_e2e.rs; TELEMETRY_E2E_* variables), and the
#           official azure-eventhub reader's rate when tests/sdk/.venv has it (.ci/run
#           makes that venv)
# Usage: benches/mosquitto_compare.sh [ingest|e2e|all] (default all). Installs mosquitto
# with apt when it is missing.
set -euo pipefail

if ! command -v mosquitto >/dev/null 2>&1; then
    echo "mosquitto is not installed; installing it with apt-get"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto; } >/dev/null 2>&1; then
        echo "skipped: mosquitto is not installed and apt-get could not install it (run as root, or install mosquitto yourself)"
        exit 0
    fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

dir=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

# A throw-away CA and a server certificate for localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=bench CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 1 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
cafile $dir/ca.pem
certfile $dir/server.pem
keyfile $dir/server.key
allow_anonymous true
persistence false
log_dest none
max_connections -1
# Every message reaches the e2e bench's subscriber: no queue limit drops any.
max_queued_messages 0
CONF
chmod 755 "$dir"; chmod 644 "$dir"/*
"$MOSQUITTO" -c "$dir/mosquitto.conf" &
pid=$!
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done
echo "mosquitto $("$MOSQUITTO" -h 2>/dev/null | head -1 | awk '{print $3}') on 127.0.0.1:$port (TLS)"

which=${1:-all}
export MQTT_BROKER_PORT=$port MQTT_BROKER_CA="$dir/ca.pem"
if [ "$which" = ingest ] || [ "$which" = all ]; then
    cargo bench --bench mqtt_ingest
fi
if [ "$which" = e2e ] || [ "$which" = all ]; then
    venv_python="$(cd "$(dirname "$0")/.." && pwd)/tests/sdk/.venv/bin/python"
    if "$venv_python" -c 'import azure.eventhub' 2>/dev/null; then
        export EVENTHUB_PYTHON="$venv_python"
    else
        echo "no azure-eventhub in tests/sdk/.venv (run .ci/run once to make it): the Python reader is left out"
    fi
    cargo bench --bench telemetry_e2e
fi
