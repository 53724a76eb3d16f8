"""Compressed image streams reduced to what decoding needs, marker segment by marker segment.

A JPEG or JPEG 2000 stream may carry free text beside the image: JPEG comment (COM) and
application (APPn: JFIF, EXIF, XMP, ICC...) segments, JPEG 2000 comment (COM) marker
segments, JP2 boxes (XML, UUID), and bytes after the end-of-image marker. Scanners and
PACS put names, accession numbers and device serials there. The segments are dropped and
every other byte is copied unchanged, so a lossy image is not re-encoded and decodes to
exactly the same pixels (no generation loss, no time spent encoding).

Hand-written because no well-kept Python library rewrites these streams without decoding
them: the marker syntax is small and stable (ITU-T T.81 B.1, T.87 C.1, T.800 A).

Pure module: bytes in, bytes out. Errors are ``CodestreamError`` (a ValueError) with a
message fit for a trainer; they never quote the stream's contents.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from app.sentences import N_

AFTER_THE_END = "bytes after the end of the image"
IGNORED_BY_DECODERS = frozenset({"COM", AFTER_THE_END, "TLM"})


class CodestreamError(ValueError):
    """The stream is not a well-formed codestream of the family it was declared as."""


@dataclass(frozen=True)
class Cleaned:
    data: bytes  # the codestream with only what decoding needs
    precision: int  # bits per sample the stream declares (largest over its components)
    removed: tuple[str, ...]  # what was dropped, e.g. ("COM", "APP1", "bytes after the end")

    @property
    def changed(self) -> bool:
        return bool(self.removed)

    @property
    def decodes_unchanged(self) -> bool:
        """Whether only what decoders ignore by definition was dropped: comments, bytes
        after the end, the optional TLM index. APPn segments, unknown markers and JP2
        boxes may matter to some decoder, so decoding is checked after dropping those."""
        return all(name in IGNORED_BY_DECODERS for name in self.removed)


# ------------------------------------------------------------------ JPEG and JPEG-LS

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
RST = range(0xD0, 0xD8)
TEM = 0x01
#: Start-of-frame markers: T.81 SOF0-15 (not DHT C4, JPG C8, DAC CC) and JPEG-LS SOF55.
JPEG_SOF = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7})
#: The segments a decoder reads: frame and scan headers, tables (DQT, DHT, DAC, JPEG-LS
#: LSE), restart interval, number of lines, hierarchical DHP/EXP. Everything else with a
#: length is dropped: COM (FFFE) is free text, and so are the application segments APP0-15.
#: The images accepted are greyscale (one component): the only APPn a decoder may read,
#: APP14 "Adobe" (colour transform) and JPEG-LS APP8 "mrfx" (HP colour transform), apply
#: to colour images alone, and JFIF (APP0) is not used in DICOM (PS3.5 8.2.1).
JPEG_KEEP = JPEG_SOF | {0xC4, 0xCC, 0xDB, SOS, 0xDC, 0xDD, 0xDE, 0xDF, 0xF8}


def clean_jpeg(stream: bytes) -> Cleaned:
    """A T.81 (baseline, extended, lossless) or T.87 (JPEG-LS) stream with only the
    segments decoding needs, up to and including its end-of-image marker."""
    if stream[:2] != b"\xff\xd8":
        raise CodestreamError(N_("the JPEG stream does not start with a start-of-image marker"))
    out = [stream[:2]]
    removed: list[str] = []
    precision = 0
    pos, size = 2, len(stream)
    while True:
        pos = _next_jpeg_marker(stream, pos)
        marker = stream[pos + 1]
        if marker == EOI:
            out.append(stream[pos : pos + 2])
            pos += 2
            break
        if marker == TEM or marker in RST:  # stand-alone markers, no length
            out.append(stream[pos : pos + 2])
            pos += 2
            continue
        if pos + 4 > size:
            raise CodestreamError(N_("the JPEG stream ends inside a marker segment"))
        (length,) = struct.unpack_from(">H", stream, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            raise CodestreamError(N_("a JPEG marker segment runs past the end of the stream"))
        if marker in JPEG_KEEP:
            out.append(stream[pos:end])
            if marker in JPEG_SOF and length >= 3:
                precision = max(precision, stream[pos + 4])
        else:
            removed.append(_jpeg_name(marker))
        pos = end
        if marker == SOS:
            scan_end = _jpeg_scan_end(stream, pos)
            out.append(stream[pos:scan_end])
            pos = scan_end
    if not precision:
        raise CodestreamError(N_("the JPEG stream has no frame header"))
    if stream[pos:].strip(b"\x00\xff"):  # more than padding to even length
        removed.append(AFTER_THE_END)
    return Cleaned(b"".join(out), precision, tuple(removed))


def _next_jpeg_marker(stream: bytes, pos: int) -> int:
    """The position of the marker at pos, skipping fill bytes (FF FF ...) before it."""
    if pos + 1 >= len(stream):
        raise CodestreamError(N_("the JPEG stream ends before its end-of-image marker"))
    if stream[pos] != 0xFF:
        raise CodestreamError(N_("the JPEG stream has data where a marker was expected"))
    while pos + 1 < len(stream) and stream[pos + 1] == 0xFF:
        pos += 1
    if pos + 1 >= len(stream) or stream[pos + 1] == 0x00:
        raise CodestreamError(N_("the JPEG stream has data where a marker was expected"))
    return pos


def _jpeg_scan_end(stream: bytes, pos: int) -> int:
    """Where the entropy-coded data after a scan header ends: at the next marker.

    In T.81 scans FF is followed by a stuffed 00 or a restart marker; in JPEG-LS scans by
    a byte below 80 (a stuffed bit). Any other byte after FF starts a marker.
    """
    while True:
        found = stream.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(stream):
            raise CodestreamError(N_("the JPEG stream ends inside its image data"))
        following = stream[found + 1]
        if following < 0x80 or following in RST:
            pos = found + 2
            continue
        return found


def _jpeg_name(marker: int) -> str:
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    return "COM" if marker == 0xFE else f"marker FF{marker:02X}"


# ------------------------------------------------------------------------ JPEG 2000

J2K_SIZ, J2K_TLM, J2K_COM = 0xFF51, 0xFF55, 0xFF64
J2K_SOT, J2K_SOD, J2K_EOC = 0xFF90, 0xFF93, 0xFFD9
#: Main-header segments a decoder reads (T.800 A.5-A.9, HTJ2K's CAP and CPF). COM and
#: anything unknown are dropped; TLM is kept while tile-part lengths stay as they were.
J2K_MAIN_KEEP = frozenset({0xFF50, J2K_SIZ, 0xFF52, 0xFF53, J2K_TLM, 0xFF57, 0xFF59, 0xFF5C,
                           0xFF5D, 0xFF5E, 0xFF5F, 0xFF60, 0xFF63})
#: Tile-part header segments a decoder reads: COD, COC, QCD, QCC, RGN, POC, PLT, PPT.
J2K_TILE_KEEP = frozenset({0xFF52, 0xFF53, 0xFF5C, 0xFF5D, 0xFF5E, 0xFF5F, 0xFF58, 0xFF61})
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def clean_j2k(stream: bytes) -> Cleaned:
    """A JPEG 2000 (or HTJ2K) codestream without comments, unknown marker segments or
    trailing bytes. A stream wrapped in the JP2 file format (which DICOM does not allow,
    but some writers use) is unwrapped: its boxes (XML, UUID, ...) are metadata."""
    removed: list[str] = []
    if stream.startswith(JP2_SIGNATURE):
        stream = _jp2_codestream(stream)
        removed.append("JP2 boxes")
    if stream[:4] != b"\xff\x4f\xff\x51":
        raise CodestreamError(N_("the JPEG 2000 stream does not start with SOC and SIZ markers"))
    out = [stream[:2]]
    precision = 0
    tlm: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        marker, segment = _j2k_segment(stream, pos)
        if marker == J2K_SOT:
            break
        if marker == J2K_SIZ:
            precision = _siz_precision(segment)
        if marker == J2K_TLM:
            tlm.append((len(out), segment))
        if marker in J2K_MAIN_KEEP:
            out.append(segment)
        else:
            removed.append(_j2k_name(marker))
        pos += len(segment)
    lengths_changed = False
    while marker == J2K_SOT:
        tile_part, pos, dropped = _j2k_tile_part(stream, pos)
        out.append(tile_part)
        removed.extend(dropped)
        lengths_changed |= bool(dropped)
        marker = _j2k_marker(stream, pos)
    if marker != J2K_EOC:
        raise CodestreamError(N_("the JPEG 2000 stream has data where a tile-part was expected"))
    out.append(stream[pos : pos + 2])
    if stream[pos + 2 :].strip(b"\x00\xff"):  # more than padding to even length
        removed.append(AFTER_THE_END)
    if lengths_changed:
        # TLM lists tile-part lengths, which just changed; it is an optional index that
        # decoders rebuild from the tile-part headers.
        for index, _ in reversed(tlm):
            del out[index]
        removed.extend("TLM" for _ in tlm)
    return Cleaned(b"".join(out), precision, tuple(removed))


def _j2k_marker(stream: bytes, pos: int) -> int:
    if pos + 2 > len(stream):
        raise CodestreamError(N_("the JPEG 2000 stream ends before its end-of-codestream marker"))
    (marker,) = struct.unpack_from(">H", stream, pos)
    return int(marker)


def _j2k_segment(stream: bytes, pos: int) -> tuple[int, bytes]:
    """The marker at pos and its whole segment (marker, length and parameters)."""
    marker = _j2k_marker(stream, pos)
    if marker < 0xFF30:
        raise CodestreamError(N_("the JPEG 2000 stream has data where a marker was expected"))
    if pos + 4 > len(stream):
        raise CodestreamError(N_("the JPEG 2000 stream ends inside a marker segment"))
    (length,) = struct.unpack_from(">H", stream, pos + 2)
    if length < 2 or pos + 2 + length > len(stream):
        raise CodestreamError(N_("a JPEG 2000 marker segment runs past the end of the stream"))
    return marker, stream[pos : pos + 2 + length]


def _siz_precision(siz: bytes) -> int:
    """The largest component bit depth in SIZ (T.800 A.5.1: Ssiz is depth - 1, top bit
    the sign)."""
    if len(siz) < 40:
        raise CodestreamError(N_("the JPEG 2000 SIZ segment is too short"))
    (components,) = struct.unpack_from(">H", siz, 38)
    depths = siz[40 : 40 + 3 * components : 3]
    if not components or len(depths) != components:
        raise CodestreamError(N_("the JPEG 2000 SIZ segment is too short"))
    return max((d & 0x7F) + 1 for d in depths)


def _j2k_tile_part(stream: bytes, pos: int) -> tuple[bytes, int, list[str]]:
    """One tile-part rewritten without its comments: (bytes, position after it, dropped)."""
    _, sot = _j2k_segment(stream, pos)
    if len(sot) != 12:
        raise CodestreamError(N_("the JPEG 2000 SOT segment has the wrong length"))
    tile, length, part, parts = struct.unpack_from(">HIBB", sot, 4)
    if length == 0:  # the last tile-part runs to the end-of-codestream marker
        end = stream.rfind(b"\xff\xd9")
        if end <= pos:
            raise CodestreamError(N_("the JPEG 2000 stream has no end-of-codestream marker"))
    else:
        end = pos + length
        if length < 14 or end > len(stream):
            raise CodestreamError(N_("a JPEG 2000 tile-part runs past the end of the stream"))
    kept, dropped = [], []
    cursor = pos + len(sot)
    while (marker := _j2k_marker(stream, cursor)) != J2K_SOD:
        marker, segment = _j2k_segment(stream, cursor)
        if cursor + len(segment) > end:
            raise CodestreamError(N_("a JPEG 2000 tile-part header runs past its tile-part"))
        if marker in J2K_TILE_KEEP:
            kept.append(segment)
        else:
            dropped.append(_j2k_name(marker))
        cursor += len(segment)
    body = stream[cursor:end]  # SOD and the tile's packets, unchanged
    header = b"".join(kept)
    new_length = 0 if length == 0 else len(sot) + len(header) + len(body)
    new_sot = sot[:4] + struct.pack(">HIBB", tile, new_length, part, parts)
    return new_sot + header + body, end, dropped


def _j2k_name(marker: int) -> str:
    return "COM" if marker == J2K_COM else f"marker {marker:04X}"


def _jp2_codestream(stream: bytes) -> bytes:
    """The contiguous codestream box (jp2c) of a JP2 file (ISO/IEC 15444-1 I.4)."""
    pos = 0
    while pos + 8 <= len(stream):
        length, kind = struct.unpack_from(">I4s", stream, pos)
        header = 8
        if length == 1:
            if pos + 16 > len(stream):
                break
            (length,) = struct.unpack_from(">Q", stream, pos + 8)
            header = 16
        elif length == 0:
            length = len(stream) - pos
        if length < header:
            break
        if kind == b"jp2c":
            return stream[pos + header : pos + length]
        pos += length
    raise CodestreamError(N_("the JP2 file has no codestream box"))


# ------------------------------------------------------------------------- dispatch


def clean(stream: bytes, family: str) -> Cleaned:
    """family: "jpeg" (T.81 and JPEG-LS) or "j2k" (JPEG 2000 and HTJ2K)."""
    if family == "jpeg":
        return clean_jpeg(stream)
    if family == "j2k":
        return clean_j2k(stream)
    raise ValueError(f"unknown codestream family {family!r}")
