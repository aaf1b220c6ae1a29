"""The embedded broker: what other processes publish, a consumer receives whole."""

import multiprocessing

from kombu import Connection

from notifier.core.filebroker import Transport

SENT = 200
PAYLOAD = "x" * 1_000_000  # large enough that writing a file is not instantaneous


def _produce(options: dict[str, str], producer: int) -> None:
    with Connection(transport=Transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("wakeups")
        for n in range(SENT):
            queue.put({"producer": producer, "n": n, "payload": PAYLOAD})


def test_a_consumer_never_sees_a_message_half_written(tmp_path):
    """Two processes publish while this one polls: before the atomic writes, the consumer
    picked up files still being written and died on the JSON."""
    options = {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
    }
    (tmp_path / "queue").mkdir()
    received = []
    # Poll as fast as possible: the race is between a file appearing and its contents.
    with Connection(
        transport=Transport, transport_options=options | {"polling_interval": 0}
    ) as conn:
        queue = conn.SimpleQueue("wakeups")  # declared before the producers start
        producers = [
            multiprocessing.get_context("fork").Process(target=_produce, args=(options, p))
            for p in range(2)
        ]
        for process in producers:
            process.start()
        while len(received) < 2 * SENT:
            message = queue.get(timeout=20)
            received.append(message.payload)
            message.ack()
        for process in producers:
            process.join(timeout=20)

    assert [p.exitcode for p in producers] == [0, 0]
    assert all(m["payload"] == PAYLOAD for m in received)
    assert sorted((m["producer"], m["n"]) for m in received) == [
        (p, n) for p in range(2) for n in range(SENT)
    ]
