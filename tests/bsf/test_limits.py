from __future__ import annotations

from bsf.limits import PendingCap, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_bursts_then_rations() -> None:
    clock = Clock()
    b = TokenBuckets(per_minute=60, burst=3, clock=clock)
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") > 0.9  # next token in about a second
    assert b.take("b") == 0.0  # keys are independent
    clock.t += 1.0
    assert b.take("a") == 0.0


def test_token_bucket_key_count_is_bounded_and_zero_rate_is_unlimited() -> None:
    clock = Clock()
    b = TokenBuckets(per_minute=1, burst=1, max_keys=10, clock=clock)
    for i in range(100):
        b.take(f"k{i}")
    assert len(b._buckets) == 10
    assert all(TokenBuckets(0, 1).take("x") == 0.0 for _ in range(100))


def test_pending_cap_releases_on_answer_and_with_time() -> None:
    clock = Clock()
    cap = PendingCap(limit=2, lifetime=60, clock=clock)
    assert cap.admit()
    cap.add("n1")
    assert cap.admit()
    cap.add("n2")
    assert not cap.admit()
    cap.release("n1")  # answered here
    assert cap.admit()
    cap.add("n3")
    assert not cap.admit()
    clock.t += 61  # n2 and n3 expire (e.g. answered at another BSF)
    assert cap.admit()
    unlimited = PendingCap(0, 60)
    for i in range(1000):
        assert unlimited.admit()
        unlimited.add(str(i))
