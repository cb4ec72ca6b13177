"""Model and tokenizer fingerprints come from file contents, each file hashed once per version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from judgekit.backends import fingerprint as fp
from judgekit.backends.vllm_engine import _resolve_model

OLD = 1_600_000_000_000_000_000  # an mtime long settled (2020), in ns


def _folder(root: Path, weights: bytes, name: str = "m") -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}')
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("not part of the judge")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "model.safetensors.lock").write_text("")
    for file in folder.rglob("*"):
        os.utime(file, ns=(OLD, OLD))
    return folder


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A private cache dir; the list of files hashed (read) since, by name."""
    monkeypatch.setenv("JUDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    reads: list[str] = []
    real = fp.sha256_file

    def counting(path: str) -> str:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(fp, "sha256_file", counting)
    return reads


def test_same_size_different_weights_differ(tmp_path: Path, hashed: list[str]) -> None:
    """Two random-weight folders of one shape, same names, sizes and mtimes: different prints."""
    one = _folder(tmp_path, os.urandom(4096), "one")
    two = _folder(tmp_path, os.urandom(4096), "two")
    assert fp.fingerprint(one) != fp.fingerprint(two)
    # same bytes in another folder: same print (names are relative, contents decide)
    three = _folder(tmp_path, (one / "model.safetensors").read_bytes(), "three")
    assert fp.fingerprint(three) == fp.fingerprint(one)
    # README and hidden files are not part of the judge
    assert sorted(set(hashed)) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert _resolve_model(str(one)) == (str(one), fp.fingerprint(one))


def test_each_file_is_hashed_once_until_it_changes(tmp_path: Path, hashed: list[str]) -> None:
    folder = _folder(tmp_path, b"\0" * 4096)
    first = fp.fingerprint(folder)
    assert len(hashed) == 3
    hashed.clear()
    assert fp.fingerprint(folder) == first and hashed == []  # the cache answered
    # new bytes of the same size, written in place (same inode): the mtime moves
    (folder / "model.safetensors").write_bytes(b"\1" * 4096)
    changed = fp.fingerprint(folder)
    assert changed != first and hashed == ["model.safetensors"]
    # a file changed seconds ago is re-read every time until it settles
    hashed.clear()
    assert fp.fingerprint(folder) == changed and hashed == ["model.safetensors"]
    # the same bytes restored under the old mtime: the print is the first one again
    (folder / "model.safetensors").write_bytes(b"\0" * 4096)
    os.utime(folder / "model.safetensors", ns=(OLD, OLD))
    assert fp.fingerprint(folder) == first


def test_replaced_file_with_the_old_size_and_mtime_is_read_again(
    tmp_path: Path, hashed: list[str]
) -> None:
    """A file replaced by another (new inode) is never answered from the cache."""
    folder = _folder(tmp_path, b"\0" * 4096)
    first = fp.fingerprint(folder)
    hashed.clear()
    staged = tmp_path / "staged"
    staged.write_bytes(b"\2" * 4096)
    os.utime(staged, ns=(OLD, OLD))
    os.replace(staged, folder / "model.safetensors")
    assert fp.fingerprint(folder) != first and hashed == ["model.safetensors"]


def test_tokenizer_print_covers_tokenizer_files_only(tmp_path: Path, hashed: list[str]) -> None:
    one = _folder(tmp_path, os.urandom(64), "one")
    two = _folder(tmp_path, os.urandom(64), "two")
    assert fp.fingerprint(one, "tokenizer") == fp.fingerprint(two, "tokenizer")
    (two / "tokenizer.json").write_text('{"model": {"vocab": {"b": 0}}}')
    assert fp.fingerprint(one, "tokenizer") != fp.fingerprint(two, "tokenizer")
    with pytest.raises(FileNotFoundError, match="holds no model files"):
        fp.fingerprint(tmp_path / "one" / ".cache")
