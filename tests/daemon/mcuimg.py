# SPDX-License-Identifier: LGPL-2.1-or-later
"""Makes unsigned MCUboot images for tests, written from MCUboot's
docs/design.md (image header, TLV area) and bootutil/image.h, not from
libsmpgw, so the daemon's parser is checked against a second reading of
the format.  imgtool makes the signed vectors in tests/data; this makes
images of any size and version."""

import hashlib
import struct

IMAGE_MAGIC = 0x96F3B83D
TLV_INFO_MAGIC = 0x6907
TLV_SHA256 = 0x10
HEADER_SIZE = 0x200


def make_image(version=(1, 1, 0, 0), size=65536, seed=1):
    """Returns (image bytes, hex image hash).  The body is a deterministic
    pattern; the hash TLV covers header + body as MCUboot computes it."""
    major, minor, revision, build = version
    body = bytes(((i * 31 + seed * 7) ^ (i >> 8)) & 0xFF for i in range(size))
    header = struct.pack("<IIHHII", IMAGE_MAGIC, 0, HEADER_SIZE, 0, size, 0)
    header += struct.pack("<BBHI", major, minor, revision, build) + struct.pack("<I", 0)
    header = header.ljust(HEADER_SIZE, b"\0")
    digest = hashlib.sha256(header + body).digest()
    tlvs = struct.pack("<HH", TLV_SHA256, len(digest)) + digest
    info = struct.pack("<HH", TLV_INFO_MAGIC, 4 + len(tlvs))
    return header + body + info + tlvs, digest.hex()


def version_string(version):
    major, minor, revision, build = version
    s = "%d.%d.%d" % (major, minor, revision)
    return s + (".%d" % build if build else "")


def prefix_twins(digits=6, size=64):
    """Two images whose ids share their first `digits` hex digits (and
    differ in the next), found by varying the build number: a birthday
    search, a few thousand hashes.  Returns ((data, id), (data, id))."""
    seen = {}
    build = 0
    while True:
        build += 1
        data, digest = make_image(version=(9, 0, 0, build), size=size, seed=1)
        key = digest[:digits]
        if key in seen and seen[key][1][digits] != digest[digits]:
            return seen[key], (data, digest)
        seen.setdefault(key, (data, digest))
