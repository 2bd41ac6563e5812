"""Progress of long operations (hss import, bsf rotate-kek): in place on a terminal, a periodic count
line otherwise, nothing for a short run (issue 24 item 8)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from gbagw.cli_common import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(times: list[float]) -> object:
    it = iter(times)
    return lambda: next(it)


def test_on_a_terminal_the_count_is_rewritten_in_place_then_ends_the_line() -> None:
    out = Terminal()
    with Progress("stored", 3, stream=out, clock=_clock([0.0, 0.05, 0.2, 0.25])) as p:  # type: ignore[arg-type]
        p(1)  # 0.05 s: too soon
        p(2)  # 0.2 s: shown
        p(3)  # 0.25 s: too soon, but the last count is shown at the end
    assert out.getvalue() == "\rstored: 2/3\x1b[K\rstored: 3/3\x1b[K\n"


def test_in_a_pipe_a_line_every_interval_and_nothing_for_a_short_run() -> None:
    out = io.StringIO()
    with Progress("re-sealed", stream=out, clock=_clock([0.0, 5.0, 10.5, 12.0, 21.0])) as p:  # type: ignore[arg-type]
        for done in (100, 200, 300, 400):
            p(done)
    assert out.getvalue() == "re-sealed: 200\nre-sealed: 400\n"
    quiet = io.StringIO()
    with Progress("re-sealed", stream=quiet, clock=_clock([0.0, 1.0])) as p:  # type: ignore[arg-type]
        p(1)
    assert quiet.getvalue() == ""


def test_hss_import_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    f = tmp_path / "subs.toml"
    rows = [
        f'[[subscriber]]\nimpi = "00101{i:010d}@ims.mnc001.mcc001.3gppnetwork.org"\n'
        'k = "465b5ce8b199b49faa5f0a2ee238a6bc"\nopc = "cd63cb71954a9f4e48a5994e37a02baf"\n'
        for i in range(10000)
    ]
    f.write_text("".join(rows))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBAGW_")}
    cmd = [sys.executable, "-m", "gbagw.cli", "hss", "import", str(f), "--data-dir", str(tmp_path / "a")]
    piped = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr  # a pipe, a short run: quiet
    # stderr on a terminal: the counts, then the line ends
    primary, secondary = pty.openpty()
    cmd[-1] = str(tmp_path / "b")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=secondary, env=env, timeout=120)
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert r.returncode == 0 and b"imported 10000 subscriber(s)" in r.stdout
    # each phase that lasted over 0.1 s ends on its final count; 10,000 subscribers take longer than that
    assert f"{f}: checked: ".encode() in shown or f"{f}: stored: ".encode() in shown, shown[-300:]
    assert shown.endswith(b"/10000\x1b[K\r\n"), shown[-300:]
