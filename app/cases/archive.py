"""Reading the files inside an uploaded .zip without trusting it.

Members are read into memory one at a time, never extracted to disk, so no entry name can
write anywhere. Archives over the entry-count, total-size or compression-ratio limits are
refused from the central directory before any member is decompressed, and every read is
capped so a member that lies about its size cannot inflate past the limit.
"""

from __future__ import annotations

import lzma
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from app.cases.sandbox import Rejected, too_large
from app.sentences import N_, say

# What reading a damaged archive raises, from zipfile itself and from the codecs behind it:
# BadZipFile (bad CRC, mangled headers), zlib.error (deflate), lzma.LZMAError, OSError (bz2's
# "Invalid data stream"), EOFError (a compressed stream cut short), NotImplementedError
# (unsupported compression method or zip version; a RuntimeError), ValueError (impossible
# offsets; UnicodeDecodeError of names), struct.error and OverflowError (impossible sizes).
DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
    struct.error,
    OverflowError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 2000
    max_total_bytes: int = 4 * 1024**3
    max_member_bytes: int = 512 * 1024**2
    max_ratio: float = 100.0  # uncompressed / compressed, per member


@dataclass(frozen=True)
class Member:
    name: str
    problem: str | None  # why this member is skipped, or None
    info: zipfile.ZipInfo


def is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _member_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return N_("absolute path in the archive: not read")
    if ".." in parts:
        return N_("path with '..' in the archive: not read")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return N_("symbolic link in the archive: not read")
    if info.flag_bits & 0x1:
        return N_("encrypted archive member: not read")
    if info.file_size > limits.max_member_bytes:
        return too_large(limits.max_member_bytes)
    return None


def open_archive(fileobj: BinaryIO, limits: ArchiveLimits) -> tuple[zipfile.ZipFile, list[Member]]:
    """Open and vet an archive; raises Rejected when the archive as a whole is refused."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except DAMAGED as exc:
        raise Rejected(say(N_("the .zip archive is damaged or not a zip file (%(cause)s)"),
                           cause=_cause(exc))) from None
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if not infos:
        archive.close()
        raise Rejected(N_("the .zip archive holds no files: nothing was imported"))
    if len(infos) > limits.max_entries:
        raise Rejected(say(N_("the archive has %(count)s files; the limit is %(limit)s"),
                           count=len(infos), limit=limits.max_entries))
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise Rejected(say(N_("the archive would unpack to %(megabytes)s MB; the limit is "
                              "%(limit)s MB"), megabytes=total // 1024**2,
                           limit=limits.max_total_bytes // 1024**2))
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio and info.file_size > 1024 * 1024:
            raise Rejected(say(N_("the archive is compressed %(ratio)s:1, above the %(limit)s:1 "
                                  "limit (a possible zip bomb); it was not unpacked"),
                               ratio=f"{ratio:.0f}", limit=f"{limits.max_ratio:.0f}"))
    return archive, [Member(i.filename, _member_problem(i, limits), i) for i in infos]


def read_member(archive: zipfile.ZipFile, member: Member, limits: ArchiveLimits) -> bytes:
    """The member's bytes, refusing to inflate beyond its declared size and the limit."""
    cap = min(member.info.file_size, limits.max_member_bytes)
    try:
        with archive.open(member.info) as fh:
            data = fh.read(cap + 1)
    except DAMAGED as exc:
        raise Rejected(say(N_("this archive member is damaged and could not be read (%(cause)s)"),
                           cause=_cause(exc))) from None
    if len(data) > cap:
        raise Rejected(N_("this archive member is larger than it declares: not read"))
    return data


def _cause(exc: BaseException) -> str:
    """What went wrong, in words that carry no content of the file: the codec's own message
    for the errors whose messages are fixed texts, else the kind of error."""
    if isinstance(exc, zlib.error | lzma.LZMAError | zipfile.BadZipFile | EOFError
                  | NotImplementedError):
        # Some BadZipFile messages go on to quote the member's name, which may name a patient.
        message = str(exc).split(" for file")[0].split("'")[0].split('"')[0].strip(" :")
        if message and len(message) < 120:
            return message
    if isinstance(exc, OSError) and str(exc) == "Invalid data stream":
        return "bzip2: invalid data stream"
    return type(exc).__name__

