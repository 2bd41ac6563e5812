"""The JSON log format: one parseable object per event, RFC 3339 UTC timestamps, request ids."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from gbaio import logs


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("gbagw.bsf.ub", logging.INFO, __file__, 1, "ub: challenge for %s", ("ü@ims.test",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_event_fields_and_timestamp() -> None:
    created = dt.datetime(2026, 11, 29, 20, 45, 2, 123456, dt.UTC).timestamp()
    event = json.loads(logs.JsonFormatter().format(_record(created)))
    assert event == {
        "ts": "2026-11-29T20:45:02.123+00:00",
        "level": "INFO",
        "logger": "gbagw.bsf.ub",
        "msg": "ub: challenge for ü@ims.test",
    }
    assert dt.datetime.fromisoformat(event["ts"]) == dt.datetime(2026, 11, 29, 20, 45, 2, 123000, dt.UTC)


def test_timestamp_follows_the_clock_across_seconds() -> None:
    """The formatted second is reused within a second only: later and earlier events get their own."""
    fmt = logs.JsonFormatter()
    base = dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    stamps = [json.loads(fmt.format(_record(t)))["ts"] for t in (base + 0.999, base + 1.0, base + 1.5, base)]
    assert stamps == [
        "2026-11-29T23:59:59.999+00:00",
        "2026-11-30T00:00:00.000+00:00",
        "2026-11-30T00:00:00.500+00:00",
        "2026-11-29T23:59:59.000+00:00",
    ]


def test_request_id_and_exception() -> None:
    fmt = logs.JsonFormatter()
    token = logs.request_id.set("rid-42")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        event = json.loads(fmt.format(record))
    finally:
        logs.request_id.reset(token)
    assert event["rid"] == "rid-42"
    assert event["exc"].startswith("Traceback") and "ValueError: boom" in event["exc"]
    assert "rid" not in json.loads(fmt.format(_record(0.0)))


def test_peer_request_id_joins_a_request_to_the_one_it_sent_on_until_the_next_request() -> None:
    fmt = logs.JsonFormatter()

    def events() -> list[dict[str, str]]:
        logs.begin_request("ub-1")
        first = json.loads(fmt.format(_record(0.0)))
        logs.peer_request_id.set("bsf.gba.test;1;2;3")  # what the Zh client does as it sends a MAR
        sent = json.loads(fmt.format(_record(0.0)))
        logs.begin_request("ub-2")  # the connection's next request has sent nothing on yet
        return [first, sent, json.loads(fmt.format(_record(0.0)))]

    first, sent, second = contextvars.copy_context().run(events)
    assert first["rid"] == "ub-1" and "peer_rid" not in first
    assert sent["rid"] == "ub-1" and sent["peer_rid"] == "bsf.gba.test;1;2;3"
    assert second["rid"] == "ub-2" and "peer_rid" not in second


def test_an_http_request_takes_the_clients_x_request_id_or_a_random_one() -> None:
    def rid(header: str | None) -> str:
        logs.begin_http_request(header)
        return logs.request_id.get()

    assert contextvars.copy_context().run(rid, "lb-" + "x" * 100) == "lb-" + "x" * 61  # 64 characters at most
    made = [contextvars.copy_context().run(rid, h) for h in (None, "")]
    assert all(len(r) == 12 and int(r, 16) >= 0 for r in made) and made[0] != made[1]


def test_request_ids_are_rfc6733_session_ids_unique_to_each_client() -> None:
    # Two clients of one origin in the same second: two BSF replicas, each PID 1 of its container.
    a, b = logs.RequestIds("bsf.gba.test"), logs.RequestIds("bsf.gba.test")

    def send() -> tuple[list[str], str]:
        ids = [a.send_next(), a.send_next(), b.send_next()]
        return ids, logs.peer_request_id.get()

    ids, peer = contextvars.copy_context().run(send)
    assert peer == ids[2]  # the events after a send carry the id last sent as their peer_rid
    origin, high, low, n = ids[0].split(";")
    assert origin == "bsf.gba.test" and 0 <= int(high) < 2**32 and 0 <= int(low) < 2**32 and n == "1"
    assert ids[1] == f"{origin};{high};{low};2"
    assert ids[2].endswith(";1") and ids[2] != ids[0]  # a 1 in 2**32 chance of a false failure


def test_the_text_format_shows_the_same_ids() -> None:
    fmt = logs.TextFormatter()

    def lines() -> list[str]:
        plain = fmt.format(_record(0.0))
        logs.begin_request("ub-1")
        own = fmt.format(_record(0.0))
        logs.peer_request_id.set("bsf.gba.test;1;2;3")
        return [plain, own, fmt.format(_record(0.0))]

    plain, own, both = contextvars.copy_context().run(lines)
    assert plain.endswith("INFO gbagw.bsf.ub: ub: challenge for ü@ims.test")
    assert own.endswith("ub: challenge for ü@ims.test [rid=ub-1]")
    assert both.endswith("ub: challenge for ü@ims.test [rid=ub-1 peer_rid=bsf.gba.test;1;2;3]")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """setup() reconfigures the process's logging; give the rest of the test run its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    flags = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags


@pytest.mark.usefixtures("restored_logging")
def test_setup_writes_one_json_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "json")
    logging.getLogger("gbagw.test").info('quote " and newline\n%s', "ok")
    logging.getLogger("gbagw.test").debug("below the level")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == 'quote " and newline\nok'
