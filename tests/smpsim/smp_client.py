# SPDX-License-Identifier: LGPL-2.1-or-later
"""An SMP client written from the Zephyr documentation alone.

It shares no code with libsmpgw on purpose: it is the independent client
that checks smpsim (and, through smpsim, our own client) against the
protocol as documented, not against our own reading of it.

Sources: Zephyr doc/services/device_mgmt/smp_protocol.rst (header),
smp_groups/smp_group_0.rst, smp_group_1.rst, smp_group_2.rst (bodies),
smp_transport.rst (UDP: one datagram per packet; console: base64 lines
with 06 09 / 04 14 markers, length, CRC16-XMODEM).
"""

import base64
import hashlib
import os
import select
import socket
import struct
import time

import cbor2

OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3
GROUP_OS, GROUP_IMAGE, GROUP_STAT = 0, 1, 2


class SMPError(Exception):
    def __init__(self, rsp):
        super().__init__(repr(rsp))
        self.rsp = rsp


class Timeout(Exception):
    pass


def header(op, version, length, group, seq, cmd):
    # byte 0: bits 2..0 op, bits 4..3 version; flags 0; then BE16 len,
    # BE16 group, u8 seq, u8 id
    return struct.pack(">BBHHBB", (op & 7) | ((version & 3) << 3), 0, length, group, seq, cmd)


def parse_header(data):
    b0, flags, length, group, seq, cmd = struct.unpack(">BBHHBB", data[:8])
    return {"op": b0 & 7, "ver": (b0 >> 3) & 3, "flags": flags, "len": length,
            "group": group, "seq": seq, "id": cmd}


def crc16_xmodem(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


class UDPTransport:
    def __init__(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.addr = (host, port)

    def send(self, packet):
        self.sock.sendto(packet, self.addr)

    def recv(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise Timeout()
        return self.sock.recv(65536)

    def close(self):
        self.sock.close()


class SerialTransport:
    """Console framing over a tty (here: an smpsim pty)."""

    def __init__(self, path):
        import termios
        import tty
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.buf = b""

    def send(self, packet):
        raw = struct.pack(">H", len(packet) + 2) + packet + struct.pack(">H", crc16_xmodem(packet))
        text = base64.b64encode(raw)
        first = True
        # 127-byte lines: 2 marker bytes, up to 124 base64 chars, newline
        while text:
            chunk, text = text[:124], text[124:]
            os.write(self.fd, (b"\x06\x09" if first else b"\x04\x14") + chunk + b"\n")
            first = False

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        data = b""
        want = None
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout()
                ready, _, _ = select.select([self.fd], [], [], left)
                if ready:
                    self.buf += os.read(self.fd, 4096)
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if line.startswith(b"\x06\x09"):
                data = base64.b64decode(line[2:])
            elif line.startswith(b"\x04\x14") and data:
                data += base64.b64decode(line[2:])
            else:
                continue  # console output
            if len(data) >= 2:
                want = struct.unpack(">H", data[:2])[0]
            if want is not None and len(data) - 2 >= want:
                packet = data[2:2 + want]
                if crc16_xmodem(packet) != 0:
                    raise ValueError("bad CRC")
                return packet[:-2]

    def close(self):
        os.close(self.fd)


class Client:
    def __init__(self, transport, version=1, timeout=2.0):
        self.t = transport
        self.version = version  # 0 = SMP v1, 1 = SMP v2 (wire values)
        self.seq = 0
        self.timeout = timeout
        self.last_header = None

    def request(self, op, group, cmd, body, timeout=None, raw_body=None):
        payload = raw_body if raw_body is not None else cbor2.dumps(body)
        self.seq = (self.seq + 1) & 0xFF
        seq = self.seq
        self.t.send(header(op, self.version, len(payload), group, seq, cmd) + payload)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            data = self.t.recv(left)
            hdr = parse_header(data)
            if hdr["seq"] != seq or hdr["group"] != group or hdr["id"] != cmd:
                continue  # a late answer to an earlier request
            if hdr["op"] != op + 1:
                continue
            if hdr["len"] != len(data) - 8:
                raise ValueError("length field %d, %d bytes" % (hdr["len"], len(data) - 8))
            self.last_header = hdr
            return cbor2.loads(data[8:])

    def checked(self, *args, **kw):
        rsp = self.request(*args, **kw)
        if rsp.get("rc", 0) != 0 or "err" in rsp:
            raise SMPError(rsp)
        return rsp

    # OS group (smp_group_0.rst)
    def echo(self, text):
        return self.checked(OP_WRITE, GROUP_OS, 0, {"d": text})["r"]

    def params(self):
        return self.checked(OP_READ, GROUP_OS, 6, {})

    def reset(self):
        return self.checked(OP_WRITE, GROUP_OS, 5, {})

    def os_info(self, fmt=None):
        return self.checked(OP_READ, GROUP_OS, 7, {"format": fmt} if fmt else {})["output"]

    def datetime(self):
        return self.checked(OP_READ, GROUP_OS, 4, {})["datetime"]

    def taskstat(self):
        return self.checked(OP_READ, GROUP_OS, 2, {})["tasks"]

    # image group (smp_group_1.rst)
    def image_list(self):
        return self.checked(OP_READ, GROUP_IMAGE, 0, {})["images"]

    def image_test(self, image_hash):
        return self.checked(OP_WRITE, GROUP_IMAGE, 0, {"hash": image_hash, "confirm": False})["images"]

    def image_confirm(self, image_hash=None):
        body = {"confirm": True}
        if image_hash is not None:
            body["hash"] = image_hash
        return self.checked(OP_WRITE, GROUP_IMAGE, 0, body)["images"]

    def image_erase(self, slot=None):
        return self.checked(OP_WRITE, GROUP_IMAGE, 5, {} if slot is None else {"slot": slot})

    def slot_info(self):
        return self.checked(OP_READ, GROUP_IMAGE, 6, {})["images"]

    def upload(self, data, chunk=256, start=None, stop_at=None):
        """Stop-and-wait upload: the first chunk carries len and sha, then
        follow the offset the device answers with.  Returns the last answer."""
        sha = hashlib.sha256(data).digest()
        off = 0
        rsp = None
        first = True
        while off < len(data):
            if stop_at is not None and off >= stop_at:
                return rsp
            body = {"off": off, "data": data[off:off + chunk]}
            if first or off == 0:
                body.update({"len": len(data), "sha": sha, "image": 0})
                first = False
            rsp = self.checked(OP_WRITE, GROUP_IMAGE, 1, body, timeout=10.0)
            off = rsp["off"]
        return rsp

    # stat group (smp_group_2.rst)
    def stat_list(self):
        return self.checked(OP_READ, GROUP_STAT, 1, {})["stat_list"]

    def stat_read(self, name):
        return self.checked(OP_READ, GROUP_STAT, 0, {"name": name})


def mcuboot_hash_tlv(image):
    """The SHA256 TLV of an MCUboot image (MCUboot image.h: header fields
    little-endian; TLV info magic 0x6907, protected 0x6908)."""
    magic, _load, hdr_size, prot_size, img_size = struct.unpack("<IIHHI", image[:16])
    assert magic == 0x96F3B83D
    off = hdr_size + img_size + prot_size
    tlv_magic, tlv_tot = struct.unpack("<HH", image[off:off + 4])
    assert tlv_magic == 0x6907
    end = off + tlv_tot
    off += 4
    while off < end:
        t, ln = struct.unpack("<HH", image[off:off + 4])
        if t == 0x10:
            return image[off + 4:off + 4 + ln]
        off += 4 + ln
    raise ValueError("no SHA256 TLV")


def mcuboot_version(image):
    major, minor, rev, build = struct.unpack("<BBHI", image[20:28])
    return "%d.%d.%d" % (major, minor, rev) + (".%d" % build if build else "")


def mcuboot_build(version=(1, 0, 0, 0), body=b"", hdr_size=0x20, flags=0):
    """An unsigned MCUboot image written from MCUboot's image.h: 32-byte
    header, body, unprotected TLV area with the SHA256 TLV over header and
    body."""
    major, minor, rev, build = version
    hdr = struct.pack("<IIHHIIBBHII", 0x96F3B83D, 0, hdr_size, 0, len(body), flags,
                      major, minor, rev, build, 0)
    hdr += b"\0" * (hdr_size - len(hdr))
    digest = hashlib.sha256(hdr + body).digest()
    tlvs = struct.pack("<HH", 0x10, 32) + digest
    return hdr + body + struct.pack("<HH", 0x6907, 4 + len(tlvs)) + tlvs
