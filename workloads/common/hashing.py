"""One way to fingerprint files: checkpoints, published models and registered packages are all checked by
sha256, read in 1 MiB blocks so a multi-GB model file never sits in memory whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def update_with_file(digest: "hashlib._Hash", path: Path) -> None:
    """Feed `path`'s bytes into `digest`."""
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    """The hex sha256 of one file."""
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()
