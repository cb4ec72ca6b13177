"""Fingerprints of model and tokenizer folders from their bytes, hashed once per file version.

Names, sizes and mtimes cannot tell two random-weight folders of one shape apart, yet store keys
and card checks rely on the fingerprint. So every weight, config and tokenizer file is read and
sha256-hashed; the per-file digests are cached in ``cache_dir()/fingerprints.json`` under the
file's resolved path with its (size, mtime_ns, inode), so a 70B folder is read once and a file
rewritten in place or replaced by another is read again. A file modified in the last few seconds
is hashed but not cached: its mtime may not move on a second write within the clock's tick.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Literal

from judgekit.files import cache_dir, sha256_file

#: Files that decide a judge's outputs: weights, configs, tokenizers, chat templates, custom code.
MODEL_FILE = re.compile(
    r".*\.(safetensors|bin|pt|pth|ckpt|gguf|h5|msgpack|npz|json|jinja|model|txt|tiktoken|py)$"
)
#: Files that decide how text becomes token ids.
TOKENIZER_FILE = re.compile(
    r"(tokenizer.*|special_tokens_map\.json|added_tokens\.json|vocab\..*|merges\.txt"
    r"|chat_template\..*|.*\.tiktoken|.*\.model)$"
)
#: Files changed more recently than this are not cached (mtime granularity, writes in progress).
SETTLE_NS = 3_000_000_000
CACHE_NAME = "fingerprints.json"


def fingerprint(path: Path | str, files: Literal["model", "tokenizer"] = "model") -> str:
    """16 hex digits of sha256 over the folder's selected files: relative names and contents.

    ``files="tokenizer"`` hashes only the tokenizer files (what decides a prompt's token ids).
    Hidden files and folders (``.git``, ``.cache``) are skipped.
    """
    folder = Path(path)
    pattern = MODEL_FILE if files == "model" else TOKENIZER_FILE
    chosen = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and pattern.fullmatch(p.name)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not chosen:
        raise FileNotFoundError(f"{folder} holds no {files} files to fingerprint")
    cache = _load_cache()
    digest = hashlib.sha256()
    changed = False
    for file in chosen:
        real = os.path.realpath(file)
        stat = os.stat(real)
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        entry = cache.get(real)
        if entry is not None and entry[:3] == key:
            file_digest = entry[3]
        else:
            file_digest = sha256_file(real)
            if time.time_ns() - stat.st_mtime_ns > SETTLE_NS:
                cache[real] = [*key, file_digest]
                changed = True
        digest.update(f"{file.relative_to(folder).as_posix()}\0{file_digest}\n".encode())
    if changed:
        _save_cache(cache)
    return digest.hexdigest()[:16]


def _load_cache() -> dict[str, list]:
    try:
        data = json.loads((cache_dir() / CACHE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache(cache: dict[str, list]) -> None:
    """Atomic replace: concurrent runs may drop each other's new entries, never corrupt the file."""
    target = cache_dir() / CACHE_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".fingerprints.", dir=target.parent)
    except OSError:
        return  # a read-only cache: fingerprints are still right, only not remembered
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(cache, out)
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


__all__ = ["fingerprint"]
