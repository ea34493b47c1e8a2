"""Which files of a folder source are read, and how: regular files inside the folder, only.

A folder is as hostile as whoever can write to it: a link may point anywhere (``/etc/passwd``,
``../../.env``), a FIFO blocks its reader forever, ``/dev/zero`` never ends, and a file name
need not be UTF-8. So the walk follows no link to a folder and takes a link to a file only
when the file's real path is inside the folder's real path. Every file is then opened one
name at a time beneath the folder with ``O_NOFOLLOW`` (a file or folder swapped for a link
after the walk is not followed either) and ``O_NONBLOCK`` (a FIFO does not block), and read
only when ``fstat`` of the opened file says it is a regular file, at most the cap + 1 bytes.
Everything not read is reported by name with the reason; names are stored printable.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from knowledge.errors import SourceError
from knowledge.ingest.extract import BINARY_SUFFIXES, SUPPORTED_SUFFIXES
from knowledge.ingest.report import RunReport

MAX_FILE_BYTES = 10 * 1024 * 1024
OUTSIDE = "a link to outside the folder"
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
# Characters a stored name must not carry as they are: control, format (such as
# right-to-left overrides that disguise a name), surrogates and line separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class FolderFile:
    """A file the walk chose to read.

    ``parts``: its real path relative to the folder, one name per level, to open it by;
    ``name``: the path it was found at, relative, ``/``-separated and printable (the url
    its document is stored under)."""

    parts: tuple[str, ...]
    name: str

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix.lower()

    @property
    def title(self) -> str:
        """The title of a document that names none: the file name without its suffix."""
        return PurePosixPath(self.name).stem.replace("_", " ")


def printable_name(name: str) -> str:
    """``name`` as ``os.walk`` gives it, in characters a database, JSON and chat all take.

    Bytes that are not UTF-8 (surrogates in ``name``) become ``\\xe9``, and unprintable
    characters their escape (``\\x07``, ``\\n``, ``\\u202e``)."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNPRINTABLE
        else ch
        for ch in text
    )


class Folder:
    """A folder source opened for one run: its files, and their text.

    Use as a context manager; it holds the folder open so every file is opened beneath it."""

    def __init__(self, path: Path) -> None:
        self.root = Path(os.path.realpath(path))
        try:
            self._fd = os.open(self.root, _DIRECTORY_FLAGS)
        except OSError as exc:
            raise SourceError(
                f"Cannot open the folder {path} ({exc.strerror}); check that it exists and "
                "that teambot's user may read it."
            ) from None

    def __enter__(self) -> Folder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        os.close(self._fd)

    def files(self, report: RunReport) -> Iterator[FolderFile]:
        """The files to read, in a stable order; every other entry is reported, by name,
        as skipped. Hidden files and folders (a leading dot) are passed over silently."""
        names: set[str] = set()
        for top, dirs, entries in os.walk(self.root):
            here = Path(top).relative_to(self.root).parts
            kept = []
            for name in sorted(d for d in dirs if not d.startswith(".")):
                if os.path.islink(os.path.join(top, name)):
                    self._skip(report, here, name, self._folder_link_reason(top, name))
                else:
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(e for e in entries if not e.startswith(".")):
                chosen = self._choose(report, top, here, name, names)
                if chosen is not None:
                    yield chosen

    def read(self, file: FolderFile, report: RunReport) -> str | bytes | None:
        """The file's text (its bytes, for a PDF), or None with the reason in ``report`` (its
        earlier content stays)."""
        try:
            fd = self._open_beneath(file.parts)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                report.skip(file.name, "replaced while teambot read the folder; not followed")
            else:
                report.fail(file.name, f"cannot be read ({exc.strerror})")
            return None
        with open(fd, "rb") as opened:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                report.skip(file.name, f"not a regular file ({_kind_of(mode)})")
                return None
            try:
                data = opened.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                report.fail(file.name, f"cannot be read ({exc.strerror})")
                return None
        if len(data) > MAX_FILE_BYTES:
            report.fail(file.name, f"larger than {MAX_FILE_BYTES // 2**20} MB")
            return None
        return file_content(file.name, data, report)

    def _choose(
        self, report: RunReport, top: str, here: tuple[str, ...], name: str, names: set[str]
    ) -> FolderFile | None:
        """The entry ``name`` of folder ``top`` as a file to read, or None (reported)."""
        path = os.path.join(top, name)
        parts = (*here, name)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                target = Path(os.path.realpath(path, strict=True))
                if not target.is_relative_to(self.root):
                    return self._skip(report, here, name, OUTSIDE)
                parts = target.relative_to(self.root).parts
                if any(part.startswith(".") for part in parts):  # .env, .git/config
                    return self._skip(report, here, name, "a link to a hidden file")
                mode = os.stat(target).st_mode
        except OSError:
            return self._skip(report, here, name, "a broken link, or gone while being read")
        if not stat.S_ISREG(mode):
            return self._skip(report, here, name, f"not a regular file ({_kind_of(mode)})")
        if PurePosixPath(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            return self._skip(report, here, name, "not a format teambot reads")
        stored = _stored_name(here, name)
        if stored in names:
            return self._skip(report, here, name, "its name, made printable, is another file's")
        names.add(stored)
        return FolderFile(parts, stored)

    def _folder_link_reason(self, top: str, name: str) -> str:
        target = Path(os.path.realpath(os.path.join(top, name)))
        if not target.is_relative_to(self.root):
            return OUTSIDE
        return "a link to a folder; teambot reads that folder's files where they are"

    @staticmethod
    def _skip(report: RunReport, here: tuple[str, ...], name: str, reason: str) -> None:
        report.pages_seen += 1
        report.skip(_stored_name(here, name), reason)

    def _open_beneath(self, parts: tuple[str, ...]) -> int:
        """Open ``parts`` one name at a time from the folder, following no link on the way."""
        opened: list[int] = []
        try:
            at = self._fd
            for part in parts[:-1]:
                at = os.open(part, _DIRECTORY_FLAGS, dir_fd=at)
                opened.append(at)
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=at)
        finally:
            for fd in opened:
                os.close(fd)


def file_content(name: str, data: bytes, report: RunReport) -> str | bytes | None:
    """A file's bytes as its extractor takes them: text decoded from UTF-8, a PDF as it is;
    None, with the reason in ``report``, for a text file that is binary or not UTF-8."""
    if PurePosixPath(name).suffix.lower() in BINARY_SUFFIXES:
        return data
    if b"\x00" in data[:8192]:
        report.fail(name, "binary, not text")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.fail(name, f"not UTF-8 (byte {exc.start}); re-save it as UTF-8")
        return None


def _stored_name(here: tuple[str, ...], name: str) -> str:
    return printable_name(PurePosixPath(*here, name).as_posix())


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a file"
