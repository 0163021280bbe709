"""Writing files and folders that are either complete or absent, checksums, and the rules
for output folders: nothing written outside ``--out``, nothing of the user's replaced.

Every folder net2fair writes as a whole (a report, an audit, projections, samples, the
synthetic benchmark, the demo, a model folder) is built in a hidden staging folder beside
its destination and renamed into place at the end. It carries a manifest,
:data:`MANIFEST`, naming the command that wrote it and every file in it. An existing
destination is replaced only when it is empty or holds nothing but what that manifest
lists for the same command; otherwise the write is refused before any work starts. The
staging folder's name carries the host and process id, so the next run into the same
place removes what a killed run left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: the manifest inside every output folder: {"command": ..., "files": [...]}
MANIFEST = ".net2fair-output.json"


class OutputError(RuntimeError):
    """An output path that cannot be used; the message (one line) says why."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set back at once)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def display_path(path: str | Path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 in a file name (``caf\\xe9.png``
    written on a Latin-1 system) appear as ``\\xe9`` instead of breaking JSON, CSV and
    HTML writers."""
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# ------------------------------------------------------------------ leftovers of a kill
def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF:08x}"


def owner_tag() -> str:
    """``<host>-<pid>``: put in temporary names so a later run can tell a dead owner."""
    return f"{_host_tag()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _dead_owner(tag: str) -> bool:
    host, _, pid = tag.partition("-")
    if host != _host_tag() or not pid.isdigit():
        return False  # another machine's (shared disk) or not ours: leave it
    return int(pid) != os.getpid() and not _pid_alive(int(pid))


def remove_leftovers(parent: Path, name: str) -> list[Path]:
    """Remove the temporary files and staging folders of ``parent/name`` whose writer is
    dead (killed mid-write); return what was removed. Live writers' files are kept."""
    removed: list[Path] = []
    prefix = f".{name}."
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix) :]
        # staging folders: .NAME.net2fair-{tmp,old}-HOST-PID-RAND; files: .NAME.HOST-PID.RAND.tmp
        if rest.startswith(("net2fair-tmp-", "net2fair-old-")):
            tag = rest.split("-", 2)[2].rsplit("-", 1)[0]
        elif rest.endswith(".tmp") and rest.count(".") == 2:
            tag = rest.split(".", 1)[0]
        else:
            continue
        if not _dead_owner(tag):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# --------------------------------------------------------------------------- one file
def temp_path_for(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that :func:`remove_leftovers` recognises."""
    return path.parent / f".{path.name}.{owner_tag()}.{secrets.token_hex(4)}.tmp"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it, rename it over
    ``path``: a kill at any moment leaves the old file or the new one, never half of one.

    The file gets the permissions a plain ``open(path, "w")`` would give. Temporary files
    that a killed earlier write left beside ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path.parent, path.name)
    tmp = temp_path_for(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------ path rules
def absolute_path(path: str | Path) -> Path:
    """``path`` made absolute with ``.`` and ``..`` taken out (``out/..`` is ``out``'s
    parent, as the shell would read it), symlinks kept: the folder a user means."""
    return Path(os.path.abspath(os.fspath(path)))


def is_within(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, after resolving both."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def safe_join(root: str | Path, *parts: str | Path) -> Path:
    """``root / parts`` after checking that it stays under ``root`` (no ``..``, no
    absolute part, no symlink out); raise :class:`OutputError` otherwise."""
    root = Path(root)
    path = root.joinpath(*parts)
    if any(Path(p).is_absolute() for p in parts) or not is_within(path, root):
        shown = "/".join(str(p) for p in parts)
        raise OutputError(f"{root}: refusing to write '{shown}', which would land outside it")
    return path


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an output folder written by net2fair, or None."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def _walk_files(folder: Path) -> Iterator[tuple[str, bool]]:
    """(relative posix path, is_dir) of everything under ``folder``, symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel_dir = Path(dirpath).relative_to(folder)
        for d in dirnames:
            full = Path(dirpath) / d
            yield (rel_dir / d).as_posix(), not full.is_symlink()
        for f in filenames:
            yield (rel_dir / f).as_posix(), False


def _stray_entry(folder: Path, command: str, legacy: tuple[str, ...]) -> str | None:
    """The first entry of ``folder`` that no earlier ``command`` output wrote, or None.

    A folder without a manifest passes as one written before manifests existed only if
    it holds nothing but ``legacy`` names *and* the first two of them (the files every
    such output has, listed first: a model's config.yaml and weights): a folder of the
    user's holding just a config.yaml or a metrics.json is not an old output."""
    manifest = read_manifest(folder)
    if manifest is not None and manifest.get("command") == command:
        files = {str(f) for f in manifest["files"]} | {MANIFEST}
        dirs = {p for f in files for p in map(str, Path(f).parents) if p != "."}
        for rel, is_dir in _walk_files(folder):
            if rel not in (dirs if is_dir else files):
                return rel + ("/" if is_dir else "")
        return None
    first = None
    for rel, is_dir in _walk_files(folder):
        if is_dir or rel not in legacy:
            return rel + ("/" if is_dir else "")
        first = first or rel
    if first is not None and not all((folder / name).is_file() for name in legacy[:2]):
        return first
    return None


def check_output_folder(
    out: str | Path,
    command: str,
    *,
    inputs: Iterable[str | Path] = (),
    legacy: Iterable[str] = (),
    option: str = "--out",
) -> Path:
    """Check, before any work, that ``command`` may write the folder ``out``.

    Allowed: ``out`` is absent, an empty folder, or an earlier output of the same command
    holding nothing but the files its manifest lists (or, for folders written before
    manifests existed, nothing but the file names in ``legacy``, the first two of which
    it must hold: list the files every such output has first). Refused: a file, a
    symlink, a folder holding anything else (it would be replaced), a folder that lies
    inside one of ``inputs`` or contains one. Returns ``out`` made absolute.

    Raises:
        OutputError: one line naming ``out`` and the reason.
    """
    out = absolute_path(out)
    for item in inputs:
        src = Path(item)
        if not src.exists():
            continue
        if is_within(out, src) and src.is_dir():
            raise OutputError(
                f"{out}: {option} lies inside the input folder {src}; the outputs would be "
                "read as inputs next time: choose a folder outside it"
            )
        if is_within(src, out):
            raise OutputError(
                f"{out}: {option} holds the input {src}, and an output folder is replaced "
                "as a whole: choose another folder"
            )
    if out.is_symlink():
        raise OutputError(
            f"{out}: is a symbolic link, not a folder (replacing it would not write where it "
            f"points); choose another {option}"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another {option}")
    if out.is_dir():
        stray = _stray_entry(out, command, tuple(legacy))
        if stray is not None:
            raise OutputError(
                f"{out}: holds '{stray}', which no earlier `net2fair {command}` wrote there; "
                f"{option} must be a new or empty folder, or an earlier {command} output "
                "(which is replaced)"
            )
    return out


def _staging_name(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.net2fair-{kind}-{owner_tag()}-{secrets.token_hex(4)}"


def _finish(tmp: Path, command: str) -> None:
    """Write the manifest, give the usual permissions (mkdtemp is owner-only), flush."""
    files = sorted(rel for rel, is_dir in _walk_files(tmp) if not is_dir)
    manifest = {"command": command, "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    umask = current_umask()
    for dirpath, _dirnames, filenames in os.walk(tmp):
        os.chmod(dirpath, 0o777 & ~umask)
        for f in filenames:
            full = os.path.join(dirpath, f)
            os.chmod(full, 0o666 & ~umask)
            with open(full, "rb") as handle:
                os.fsync(handle.fileno())


def _missing_parents(folder: Path) -> list[Path]:
    """The folders above ``folder`` that do not exist yet, the deepest first."""
    missing = []
    for parent in folder.parents:
        if os.path.lexists(parent):
            break
        missing.append(parent)
    return missing


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a scheduler's time limit) raises
    KeyboardInterrupt in this process, so cleanups run as for Ctrl-C instead of the
    process vanishing with its staging folder left behind. Only in the main thread, and
    only where nobody else handles SIGTERM; a forked child gets the plain signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):  # no SIGTERM here
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return
    owner = os.getpid()

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a forked worker: die as it would have
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt(f"terminated (signal {signum})")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _swap_in(tmp: Path, out: Path, command: str, legacy: tuple[str, ...], option: str) -> None:
    """Put the finished ``tmp`` at ``out``. The earlier output is moved aside first and
    checked once more there (a file the user put in it while this command ran is never
    deleted); on any failure it is moved back, so ``out`` is never left missing."""
    old = None
    try:
        if os.path.lexists(out):
            old = _staging_name(out, "old")
            os.replace(out, old)
            stray = _stray_entry(old, command, legacy) if old.is_dir() else out.name
            if stray is not None:
                raise OutputError(
                    f"{out}: '{stray}' appeared in it while `net2fair {command}` ran; it was "
                    f"kept and nothing was replaced: choose another {option}"
                )
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not os.path.lexists(out):
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(
    out: str | Path,
    command: str,
    *,
    inputs: Iterable[str | Path] = (),
    legacy: Iterable[str] = (),
    option: str = "--out",
) -> Iterator[Path]:
    """Build the output folder of ``command`` aside, then put it in place at ``out``.

    ``with staged_folder(out, "report") as tmp:`` yields an empty hidden folder beside
    ``out``; write everything into it. On leaving the block without an error, a manifest
    is added and ``out`` is replaced by it (checked again with
    :func:`check_output_folder`); on an error, Ctrl-C or SIGTERM ``out`` is untouched and
    the staging folder is removed, as are the folders above ``out`` that were made for it
    (after SIGKILL the next run into the same place removes the staging folder).

    Raises:
        OutputError: ``out`` may not be written (checked on entry and before the swap).
    """
    inputs = list(inputs)
    legacy = tuple(legacy)
    out = check_output_folder(out, command, inputs=inputs, legacy=legacy, option=option)
    made = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, out.name)
    tmp = _staging_name(out, "tmp")
    done = False
    try:
        tmp.mkdir()
        with _terminate_as_interrupt():
            yield tmp
            _finish(tmp, command)
            try:
                check_output_folder(out, command, inputs=inputs, legacy=legacy, option=option)
            except OutputError as e:
                raise OutputError(
                    f"{e} (it changed while `net2fair {command}` ran: it was kept as it is "
                    "and the new output discarded)"
                ) from None
            _swap_in(tmp, out, command, legacy, option)
        done = True
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            for folder in made:  # deepest first; only what is still empty
                try:
                    folder.rmdir()
                except OSError:
                    break


def write_folder_atomically(
    path: str | Path,
    fill: Callable[[Path], None],
    *,
    command: str = "model",
    legacy: Iterable[str] = (),
) -> Path:
    """``fill(tmp)`` in a staging folder, then put it at ``path``: see :func:`staged_folder`."""
    with staged_folder(path, command, legacy=legacy, option="the destination") as tmp:
        fill(tmp)
    return absolute_path(path)
