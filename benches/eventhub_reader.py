"""The official azure-eventhub reader against the local hub's Event Hubs-compatible
endpoint, for benches/telemetry_e2e.rs: reads every partition from its latest event,
prints "ready" once every partition's receiver is open, then "read N events in S s"
(from the first event to the Nth) and exits.

Usage: python eventhub_reader.py CONNECTION_STRING CA_PEM N
"""

import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient


def main() -> None:
    connection_string, ca, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # The SDK dials port 5671 whatever the connection string's endpoint says; a custom
    # endpoint address carries the hub's port.
    endpoint = next(p for p in connection_string.split(";") if p.startswith("Endpoint="))
    address = endpoint[len("Endpoint="):].rstrip("/")
    client = EventHubConsumerClient.from_connection_string(
        connection_string,
        consumer_group="$Default",
        connection_verify=ca,
        custom_endpoint_address=address,
    )
    partitions = client.get_partition_ids()
    opened = set()
    lock = threading.Lock()
    state = {"count": 0, "first": None, "last": None}
    done = threading.Event()

    def on_partition_initialize(context):
        with lock:
            opened.add(context.partition_id)
            if len(opened) == len(partitions):
                print("ready", flush=True)

    def on_event_batch(context, events):
        now = time.monotonic()
        with lock:
            if events and state["first"] is None:
                state["first"] = now
            state["count"] += len(events)
            if state["count"] >= wanted and not done.is_set():
                state["last"] = now
                done.set()

    worker = threading.Thread(
        target=client.receive_batch,
        kwargs={
            "on_event_batch": on_event_batch,
            "on_partition_initialize": on_partition_initialize,
            "starting_position": "@latest",
            "max_batch_size": 300,
        },
        daemon=True,
    )
    worker.start()
    if not done.wait(timeout=600):
        print(f"read only {state['count']} of {wanted} events", flush=True)
        sys.exit(1)
    took = state["last"] - state["first"]
    print(f"read {state['count']} events in {took:.3f} s", flush=True)
    client.close()


if __name__ == "__main__":
    main()
