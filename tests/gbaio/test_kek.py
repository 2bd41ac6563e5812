from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from gbaio.kek import KekFileError, _exposed, load_or_create_kek


def test_created_0600_then_loaded_unchanged(tmp_path: Path) -> None:
    kek = load_or_create_kek(tmp_path / "d" / "kek")
    assert len(kek) == 32 and (tmp_path / "d" / "kek").stat().st_mode & 0o777 == 0o600
    assert load_or_create_kek(tmp_path / "d" / "kek") == kek


def test_a_kek_file_that_cannot_be_created_or_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(KekFileError, match=r"cannot create KEK file .*afile/kek: .*afile is not a directory"):
        load_or_create_kek(tmp_path / "afile" / "kek")
    (tmp_path / "dir-kek").mkdir(mode=0o700)
    with pytest.raises(KekFileError, match=r"cannot read KEK file .*dir-kek: Is a directory$"):
        load_or_create_kek(tmp_path / "dir-kek")


def _stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 1, 1, 1, uid, 10001, 32, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "exposed"),
    [
        (0o600, 10001, False),
        (0o400, 10001, False),
        (0o600, 0, False),
        # A Kubernetes Secret volume with defaultMode 0400 in a pod with an fsGroup: 0440 root:fsGroup.
        (0o440, 0, False),
        (0o640, 0, False),
        (0o440, 10001, True),  # the group of a file its user owns: not a root-managed secret
        (0o460, 0, True),  # the group could replace it
        (0o450, 0, True),
        (0o404, 0, True),
        (0o604, 10001, True),
        (0o601, 10001, True),
    ],
)
def test_who_may_read_a_kek_file(mode: int, uid: int, exposed: bool) -> None:
    assert _exposed(_stat(mode, uid)) is exposed


def test_a_kek_file_readable_by_others_is_refused_and_left_alone(tmp_path: Path) -> None:
    kek = tmp_path / "kek"
    kek.write_bytes(bytes(32))
    kek.chmod(0o644)
    with pytest.raises(KekFileError, match=r"must not be accessible by group or others \(chmod 600"):
        load_or_create_kek(kek)
    assert kek.read_bytes() == bytes(32) and kek.stat().st_mode & 0o777 == 0o644


def test_a_kek_written_first_by_another_process_is_the_one_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kek"
    theirs = os.urandom(32)
    link = os.link

    def another_process_first(src: str, dst: str) -> None:
        Path(dst).write_bytes(theirs)
        Path(dst).chmod(0o600)
        link(src, dst)

    monkeypatch.setattr(os, "link", another_process_first)
    assert load_or_create_kek(path) == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek"]  # our unused file is gone


def _load(path: str) -> bytes:
    return load_or_create_kek(Path(path))


def test_processes_starting_together_on_a_missing_kek_share_one(tmp_path: Path) -> None:
    path = str(tmp_path / "shared" / "kek")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        keks = pool.map(_load, [path] * 64)
    assert len(set(keks)) == 1 and keks[0] == Path(path).read_bytes()
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["kek"]
