from __future__ import annotations

from pathlib import Path

import pytest

from gbaio.kek import KekFileError, load_or_create_kek


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
