from __future__ import annotations

from pathlib import Path

import pytest

from gbaio.errors import os_reason


def test_reasons_name_the_path_at_fault(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(OSError) as exists:
        (tmp_path / "afile").mkdir()
    assert os_reason(exists.value) == f"{tmp_path / 'afile'} is not a directory"
    with pytest.raises(OSError) as missing:
        (tmp_path / "nope").read_bytes()
    assert os_reason(missing.value) == f"No such file or directory: {tmp_path / 'nope'}"
    assert os_reason(OSError("plain")) == "plain"
    assert os_reason(missing.value, tmp_path / "nope") == "No such file or directory"
