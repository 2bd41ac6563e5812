"""Hypothesis stateful test of the Ub state machine: UEs start bootstraps (with their TMPI once they have
one, TS 33.220 4.5.2), answer them rightly or wrongly, replay answers and send garbage, in any order. The
HSS side is a stub Zh client (this is a unit test of bsf.ub); the store is the real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from pathlib import Path

import aiohttp
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics
from bsf.store.sqlite import SqliteStore
from bsf.ub import create_ub_server
from bsf.zh_client import UnknownSubscriber, Vector
from gba import digest, kdf, milenage, ue
from gba.keywrap import Keyring

K, OPC = os.urandom(16), os.urandom(16)
IMPIS = ["a@ims.test", "b@ims.test", "c@ims.test"]


class StubZh:
    """Vectors from a local Milenage with a per-IMPI SQN, as the HSS stub would hand them out."""

    def __init__(self) -> None:
        self.mil = milenage.Milenage(K, OPC)
        self.sqn = {impi: 32 for impi in IMPIS}
        self.client = None

    async def fetch_vector(self, impi: str, resync_info: bytes | None = None) -> Vector:
        if impi not in self.sqn:
            raise UnknownSubscriber(impi)
        if resync_info is not None:
            sqn_ms = milenage.recover_sqn_ms(self.mil, resync_info[:16], resync_info[16:])
            assert sqn_ms is not None
            self.sqn[impi] = sqn_ms
        self.sqn[impi] += 33  # next SEQ, next IND
        av = milenage.generate_vector(self.mil, os.urandom(16), self.sqn[impi], b"\x80\x00")
        return Vector(av.rand, av.autn, av.xres, av.ck, av.ik, None)


class UbMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = SqliteStore(Path(self.tmp.name) / "bsf.sqlite", Keyring(os.urandom(32)))
        config = BsfConfig(rate_per_impi=0, rate_per_source=0)
        self.server = create_ub_server(config, self.store, StubZh(), BsfMetrics())  # type: ignore[arg-type]
        port = self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{port}/"
        self.session = self.loop.run_until_complete(self._session())
        self.ues = {impi: ue.UeClient(ue.Usim(K, OPC), impi, "bsf.gba.test") for impi in IMPIS}
        self.challenges: dict[str, str] = {}  # IMPI -> last WWW-Authenticate not yet answered
        self.answers: list[str] = []  # every Authorization answer sent, for replays
        self.issued: set[str] = set()
        self.statuses: list[int] = []
        self.server_headers: list[str] = []

    @staticmethod
    async def _session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def _get(self, authorization: str) -> tuple[int, str, bytes, str | None]:
        async def go() -> tuple[int, str, bytes, str | None]:
            headers = {"Authorization": authorization, "User-Agent": ue.USER_AGENT}
            async with self.session.get(self.url, headers=headers) as r:
                self.server_headers.append(r.headers.get("Server", ""))
                return (
                    r.status,
                    r.headers.get("WWW-Authenticate", ""),
                    await r.read(),
                    r.headers.get("Authentication-Info"),
                )

        return self.loop.run_until_complete(go())

    @rule(impi=st.sampled_from([*IMPIS, "nobody@ims.test"]))
    def start(self, impi: str) -> None:
        first = self.ues[impi].authorization() if impi in self.ues else None
        status, www, _, _ = self._get(first or digest.Credentials(impi, "bsf.gba.test", "", "/", "").to_header())
        self.statuses.append(status)
        if impi in self.ues:
            assert status == 401
            self.challenges[impi] = www
        else:
            assert status == 403

    @rule(impi=st.sampled_from(IMPIS), correct=st.booleans())
    def answer(self, impi: str, correct: bool) -> None:
        www = self.challenges.pop(impi, None)
        if www is None:
            return
        answer = self.ues[impi].on_challenge(www)
        if not correct:
            cred = digest.Credentials.parse(answer)
            answer = answer.replace(cred.response, "0" * 32)
        self.answers.append(answer)
        status, new_www, body, info = self._get(answer)
        self.statuses.append(status)
        if correct and self.ues[impi].resynchronising:
            assert status == 401  # resync: a fresh challenge
            self.challenges[impi] = new_www
        elif correct:
            assert status == 200
            boot = self.ues[impi].on_success(info, body, self.server_headers[-1])  # also verifies rspauth
            assert boot.tmpi is not None  # the next start goes with it
            assert boot.btid not in self.issued
            self.issued.add(boot.btid)
        else:
            assert status == 403

    @rule(index=st.integers(min_value=0, max_value=50))
    def replay(self, index: int) -> None:
        if not self.answers:
            return
        answer = self.answers[index % len(self.answers)]
        status, www, _, _ = self._get(answer)
        self.statuses.append(status)
        username = digest.Credentials.parse(answer).username
        if not kdf.is_tmpi(username) or username in {u.username for u in self.ues.values()}:
            assert status == 401 and "stale=true" in www  # a used nonce never yields a second B-TID
        else:
            assert status == 403  # a TMPI since replaced: unknown, the UE is to use its IMPI

    @rule(text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200))
    def garbage(self, text: str) -> None:
        header = "Digest " + text  # printable only: the HTTP client itself refuses control characters
        status, _, _, _ = self._get(header)
        self.statuses.append(status)
        assert status in (400, 401, 403)

    @rule(impi=st.sampled_from(IMPIS), ahead=st.integers(min_value=1, max_value=10_000))
    def usim_ahead(self, impi: str, ahead: int) -> None:
        usim = self.ues[impi].usim
        usim.seq_ms = [s + ahead for s in usim.seq_ms]

    @invariant()
    def never_a_server_error(self) -> None:
        assert all(s < 500 for s in self.statuses)

    @invariant()
    def the_bsf_always_signals_tmpi(self) -> None:
        assert all("3gpp-gba-tmpi" in h.split() for h in self.server_headers)

    @invariant()
    def every_issued_btid_is_stored(self) -> None:
        for btid in self.issued:
            ctx = self.loop.run_until_complete(self.store.get_context(btid))
            # A newer bootstrap of the same IMPI supersedes older contexts (TS 33.220 4.5.2).
            if ctx is not None:
                assert base64.b64encode(ctx.rand).decode() == btid.split("@")[0]

    def teardown(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self.server.close())
        self.loop.run_until_complete(self.store.close())
        self.loop.close()
        self.tmp.cleanup()


UbMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestUbStateMachine = UbMachine.TestCase
