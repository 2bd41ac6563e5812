"""The bare python-diameter 0.9.0 echo ceiling: a Node answering Zh requests at once, no work.

`python bench/pd_echo.py server PORT` serves; `python bench/pd_echo.py client PORT N INFLIGHT` prints
answers per second measured with a python-diameter client Node (threads, as the library is built).
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diameter.message import Message
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

from gba import diameter as d

SERVER, CLIENT, REALM = "echo.gba.test", "bench.gba.test", "gba.test"


def _answer(app: SimpleThreadingApplication, msg: Message) -> Message:
    return app.generate_answer(msg, result_code=2001)


def server(port: int) -> None:
    node = Node(SERVER, REALM, ip_addresses=["127.0.0.1"], tcp_port=port, vendor_ids=[d.VENDOR_3GPP])
    node.idle_timeout = 3600
    peer = node.add_peer(f"aaa://{CLIENT}:{port};transport=tcp", REALM)
    app = SimpleThreadingApplication(d.APP_ZH, is_auth_application=True, request_handler=_answer)
    node.add_application(app, [peer])
    node.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        node.stop(wait_timeout=1, force=True)


def client(port: int, n: int, inflight: int) -> None:
    node = Node(CLIENT, REALM, vendor_ids=[d.VENDOR_3GPP])
    node.idle_timeout = 3600
    peer = node.add_peer(
        f"aaa://{SERVER}:{port};transport=tcp", REALM, ip_addresses=["127.0.0.1"], is_persistent=True, is_default=True
    )
    app = SimpleThreadingApplication(d.APP_ZH, is_auth_application=True)
    node.add_application(app, [peer])
    node.start()
    app.wait_for_ready()
    raw = d.MultimediaAuthRequest("s;1", CLIENT, REALM, REALM, "user@ims.test").to_envelope(0, 0).encode()

    def one(_: int) -> None:
        msg = Message.from_bytes(raw)
        msg.header.hop_by_hop_identifier = 0
        msg.header.end_to_end_identifier = 0
        app.send_request(msg, timeout=10)

    for i in range(50):  # warm-up
        one(i)
    start = time.perf_counter()
    if inflight <= 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(inflight) as pool:
            list(pool.map(one, range(n)))
    print(f"{n / (time.perf_counter() - start):.1f}", flush=True)
    node.stop(wait_timeout=1, force=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
