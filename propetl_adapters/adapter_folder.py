"""An adapter folder written as a unit and verified as one before anything is loaded from it.

Saving (``commit_folder``): every file goes into a fresh hidden sibling of the target folder,
``propetl_manifest.json`` is written last (the size and SHA-256 of every file), and the sibling then
takes the target's place in one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``). A crash
before the exchange leaves the old folder untouched, a crash after it leaves the new one complete;
the hidden leftovers are removed by the next save into the same place. Files in the target that a
save does not write (another tool's output) are hard-linked into the new folder first, so they
survive the swap.

Loading (``verify_folder``): every file the manifest lists must be present with its size and
SHA-256, and no adapter file may be present that it does not list.
"""

import contextvars
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from os.path import isdir, isfile, join
from typing import Callable, Optional, Tuple

from adapters.utils import (CONFIG_NAME, HEAD_CONFIG_NAME, HEAD_WEIGHTS_NAME, INTERFACE_CONFIG_NAME,
                            SAFE_HEAD_WEIGHTS_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME)

from .atomic import atomic_write_json
from .mask_io import MASK_FILE_NAME

MANIFEST_NAME = "propetl_manifest.json"
MANIFEST_FORMAT = 1
# The files a save may write: one left from an older save is replaced, never carried into the new folder.
ADAPTER_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, SAFE_WEIGHTS_NAME, MASK_FILE_NAME, HEAD_CONFIG_NAME,
                           HEAD_WEIGHTS_NAME, SAFE_HEAD_WEIGHTS_NAME, INTERFACE_CONFIG_NAME, MANIFEST_NAME})
_TEMP_FILE = re.compile(r"^(?P<file>.+)\.tmp-(?P<pid>\d+)$")  # atomic_write_bytes' temporary files
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_staging = contextvars.ContextVar("propetl_staging_folder", default=None)


class AdapterFolderError(ValueError):
    """An adapter folder whose files do not match its manifest (damaged, or changed after the save)."""


def file_digest(path: str) -> Tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of one file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync(path: str):
    """Flush a file or folder to disk (a folder: its entries), so the swap never publishes unwritten data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some systems cannot fsync a folder; the data files are already synced
        pass
    finally:
        os.close(fd)


def write_manifest(folder: str):
    """List every file of ``folder`` (size and SHA-256) in its manifest; the last file a save writes."""
    files = {}
    for name in sorted(os.listdir(folder)):
        path = join(folder, name)
        if name != MANIFEST_NAME and isfile(path):
            _fsync(path)
            size, sha256 = file_digest(path)
            files[name] = {"size": size, "sha256": sha256}
    atomic_write_json(join(folder, MANIFEST_NAME), {"format": MANIFEST_FORMAT, "files": files}, sort_keys=True)


def read_manifest(folder: str) -> Optional[dict]:
    """The manifest's ``files`` table ({name: {size, sha256}}), None if the folder has no manifest."""
    path = join(folder, MANIFEST_NAME)
    if not isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterFolderError(f"{path}: unreadable manifest ({err}).") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise AdapterFolderError(f"{path}: manifest format {found!r}, this library reads format {MANIFEST_FORMAT}.")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise AdapterFolderError(f"{path}: manifest has no 'files' table.")
    for name, entry in files.items():
        if os.path.basename(name) != name or name in ("", ".", "..") or not isinstance(entry, dict) \
                or not isinstance(entry.get("size"), int) or not _SHA256_HEX.match(str(entry.get("sha256"))):
            raise AdapterFolderError(f"{path}: invalid entry {name!r}: {entry!r} (expected a file name with an "
                                     "integer 'size' and a hex 'sha256').")
    return files


def verify_folder(folder: str) -> Optional[dict]:
    """Check every file against the manifest; returns its ``files`` table (None: a folder saved without one)."""
    files = read_manifest(folder)
    if files is None:
        return None
    for name, expected in files.items():
        path = join(folder, name)
        if not isfile(path):
            raise AdapterFolderError(f"{path}: missing, but {MANIFEST_NAME} lists it (the folder was changed after "
                                     "the save).")
        size, sha256 = file_digest(path)
        if size != expected["size"]:
            raise AdapterFolderError(f"{path}: {size} bytes, {MANIFEST_NAME} says {expected['size']} (truncated or "
                                     "replaced after the save).")
        if sha256 != expected["sha256"]:
            raise AdapterFolderError(f"{path}: SHA-256 differs from the one in {MANIFEST_NAME} (damaged or replaced "
                                     "after the save).")
    unlisted = sorted(name for name in ADAPTER_FILES - {MANIFEST_NAME} - set(files) if isfile(join(folder, name)))
    if unlisted:
        raise AdapterFolderError(f"{join(folder, unlisted[0])}: not listed in {MANIFEST_NAME} (added after the "
                                 "save); remove it or save the adapter again.")
    return files


def is_staging(folder: str) -> bool:
    """Whether ``folder`` is the staging folder of the save in progress (its writers must not commit again)."""
    return _staging.get() == os.path.realpath(folder)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # no harmless liveness probe: a leftover is removed only on POSIX systems
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_prefix(base: str) -> str:
    return f".{base}.propetl-staging-"


def remove_stale(target: str):
    """Remove what saves killed part-way left behind: hidden staging siblings and temporary files in ``target``."""
    parent, base = os.path.split(target)
    prefix = _staging_prefix(base)
    for name in os.listdir(parent):
        pid = name[len(prefix):].split("-", 1)[0]
        if name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(join(parent, name), ignore_errors=True)
    if isdir(target):
        for name in os.listdir(target):
            match = _TEMP_FILE.match(name)
            if match and match["file"] in ADAPTER_FILES and not _alive(int(match["pid"])):
                os.remove(join(target, name))


def _link_or_copy(source: str, destination: str):
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _carry_foreign_files(target: str, staging: str):
    """Files and folders in ``target`` that a save does not write move along into the new folder."""
    for name in os.listdir(target):
        if name in ADAPTER_FILES or (_TEMP_FILE.match(name) and _TEMP_FILE.match(name)["file"] in ADAPTER_FILES):
            continue
        source, destination = join(target, name), join(staging, name)
        if os.path.islink(source):
            os.symlink(os.readlink(source), destination)
        elif isdir(source):
            shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, destination)


def _exchange(first: str, second: str) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second)


def _swap_into_place(staging: str, target: str) -> Optional[str]:
    """Put ``staging`` at ``target``; returns where the previous folder now lies (to delete), if there was one."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return None
    if _exchange(staging, target):
        return staging
    # No atomic exchange here: two renames. A crash between them leaves the old adapter only in the hidden
    # sibling ``old`` (documented in docs/guarantees.md).
    old = staging + "-old"
    os.rename(target, old)
    os.rename(staging, target)
    return old


def commit_folder(target: str, write: Callable[[str], None]):
    """Run ``write(staging_folder)``, add the manifest and swap the result into ``target`` as one unit."""
    target = os.path.realpath(target)
    if os.path.exists(target) and not isdir(target):
        raise NotADirectoryError(f"{target}: exists and is not a folder; cannot save an adapter there.")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    remove_stale(target)
    staging = join(parent, f"{_staging_prefix(os.path.basename(target))}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(staging)
    previous = None
    try:
        if isdir(target):
            shutil.copymode(target, staging)
        token = _staging.set(staging)
        try:
            write(staging)
        finally:
            _staging.reset(token)
        write_manifest(staging)
        if isdir(target):
            _carry_foreign_files(target, staging)
        _fsync(staging)
        previous = _swap_into_place(staging, target)
        _fsync(parent)
    finally:  # the partial staging folder after a failure, the previous adapter after a swap
        shutil.rmtree(staging if previous is None else previous, ignore_errors=True)
