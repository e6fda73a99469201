"""llama.cpp's HF → GGUF converter, taken from the llama-cpp-python sdist so it matches the runtime.

The converter is a script, not a package on PyPI, and its output must load in the llama.cpp we
serve with; the sdist of the installed llama-cpp-python carries exactly that version.
"""

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from retrieval.errors import AjusteError

SCRIPT = "convert_hf_to_gguf.py"
ALWAYS = ("gguf-py", "models/templates")  # the converter's gguf copy; chat templates it reads


class ConverterError(AjusteError):
    """The GGUF converter can't be found or fetched."""


def converter_dir(cache: Path, folder: Path | None = None) -> Path:
    """Return a folder with the converter of the installed llama.cpp, fetching it once."""
    if folder is not None:
        return _checked(folder, "the folder passed with --converter")
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError as error:
        raise ConverterError("llama-cpp-python is not installed: run `pip install '.'`.") from error
    target = cache / f"llama.cpp-{version}"
    if (target / SCRIPT).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as temporary:
        sdist = _sdist(cache, version, Path(temporary))
        staging = Path(temporary) / "llama.cpp"
        _extract(sdist, staging)
        _checked(staging, f"{sdist.name}")
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / SCRIPT).is_file():
                raise
    return target


def _checked(folder: Path, what: str) -> Path:
    if not (folder / SCRIPT).is_file() or not (folder / "gguf-py" / "gguf").is_dir():
        raise ConverterError(
            f"{what} ({folder}) lacks {SCRIPT} or gguf-py/: pass llama.cpp's source folder "
            "(vendor/llama.cpp of the llama-cpp-python sdist)."
        )
    return folder


def _sdist(cache: Path, version: str, temporary: Path) -> Path:
    """The sdist: one a user dropped into the cache (air-gapped), else `pip download`."""
    dropped = cache / f"llama_cpp_python-{version}.tar.gz"
    if dropped.is_file():
        return dropped
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--quiet", f"llama-cpp-python=={version}", "-d", str(temporary)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(temporary.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or [""])[-1][:200]  # pip's own summary
        raise ConverterError(
            f"Could not fetch the llama-cpp-python {version} sdist from PyPI "
            f"({last or 'no file'}). Run once with network access to PyPI, "
            f"put {dropped.name} into {cache}, "
            "or pass llama.cpp's source folder with --converter."
        )
    return found[0]


def _extract(sdist: Path, staging: Path) -> None:
    """Extract the converter, gguf-py and the local modules it imports; nothing else."""
    with tarfile.open(sdist) as archive:
        members = {}
        for member in archive.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.isfile() and parts[1:3] == ("vendor", "llama.cpp") and len(parts) > 3:
                members[PurePosixPath(*parts[3:])] = member
        script = members.get(PurePosixPath(SCRIPT))
        if script is None:
            raise ConverterError(f"{sdist} has no {SCRIPT}: delete it and run again.")
        wanted = {*ALWAYS, SCRIPT, *_local_imports(archive, script, members)}
        for relative, member in members.items():
            if not any(relative.is_relative_to(prefix) for prefix in wanted):
                continue
            if ".." in relative.parts or relative.is_absolute():
                continue  # a hostile archive; llama.cpp's never has such names
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None  # regular files always have content
            with source, destination.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            if member.mode & 0o100:
                os.chmod(destination, 0o755)


def _local_imports(
    archive: tarfile.TarFile, script: tarfile.TarInfo, members: dict[PurePosixPath, tarfile.TarInfo]
) -> set[str]:
    """Top-level modules the script imports that live beside it (e.g. `conversion/`)."""
    source = archive.extractfile(script)
    assert source is not None
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    local = set()
    for name in names:
        if PurePosixPath(f"{name}.py") in members:
            local.add(f"{name}.py")
        elif PurePosixPath(name, "__init__.py") in members:
            local.add(name)
    return local
