"""Minimal pure-Python wheels, as users ship them in plugins.zip."""

from __future__ import annotations

import zipfile
from pathlib import Path


def write_wheel(
    folder: Path, name: str, version: str, code: str, extra: dict[str, str] | None = None
) -> Path:
    """`name` as a package whose `__init__` is `code`, plus `extra` files at the wheel's root
    (a `.pth` file, say)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code,
        **(extra or {}),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
        record = "".join(f"{member},,\n" for member in [*files, f"{info}/RECORD"])
        archive.writestr(f"{info}/RECORD", record)
    return path
