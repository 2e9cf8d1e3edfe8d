#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libsmpgw as an outside program sees it (issue 10): `meson install
--destdir` into a temporary directory outside the build tree, then a small
C program that includes <smpgw/smpgw.h>, built with nothing but
`pkg-config --cflags --libs libsmpgw`, linked, and run against the
installed library and plugins.  Also: only the public headers are
installed (no lib/util.h).

Environment: MESON, BUILD_ROOT, CC and SANITIZE (the build's b_sanitize;
optional)."""

import glob
import os
import shutil
import subprocess
import tempfile
import unittest

MESON = os.environ.get("MESON", "meson")
BUILD_ROOT = os.environ["BUILD_ROOT"]
CC = os.environ.get("CC") or shutil.which("cc") or "gcc"
SANITIZE = os.environ.get("SANITIZE", "")

PUBLIC_HEADERS = {
    "smpgw.h", "smp-frame.h", "smp-serial.h", "smp-cbor.h", "smp-error.h", "smp-os.h", "smp-img.h",
    "smp-stat.h", "smp-omp.h", "mcuboot-image.h", "smp-parse.h", "smp-conn.h", "smp-transport.h",
    "smp-context.h", "smp-discovery.h", "smp-session.h", "smp-upload.h", "smp-update.h",
}

PROGRAM = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <smpgw/smpgw.h>

int main(int argc, char *argv[]) {
        struct smp_context *ctx;
        struct smp_conn *conn;
        char **names, *why = NULL;
        uint8_t frame[64];
        uint64_t n;

        if (argc != 2 || smp_context_new(&ctx) < 0 || smp_context_set_plugin_path(ctx, argv[1]) < 0)
                return 1;
        int count = smp_context_list_transports(ctx, &names);
        for (int i = 0; i < count; i++)
                printf("transport %s\n", names[i]);
        smp_strv_free(names);

        if (smp_context_parse_conn(ctx, "udp:localhost:01337,mtu=0512", &conn, NULL) < 0)
                return 2;
        printf("canonical %s\n", smp_conn_get_string(conn));
        smp_conn_unref(conn);
        if (smp_context_parse_conn(ctx, "udp:127.0.0.1", &conn, &why) != -EINVAL)
                return 3;
        printf("refused %s\n", why);
        free(why);

        const struct smp_header hdr = { .op = SMP_OP_READ, .version = SMP_VERSION_2, .group = SMP_GROUP_OS, .id = 6 };
        static const uint8_t empty_map[] = { 0xa0 };
        printf("frame %d\n", smp_frame_build(&hdr, empty_map, sizeof(empty_map), frame, sizeof(frame)));
        if (smp_parse_uint("4096", 1, 65535, &n) < 0)
                return 4;
        printf("number %llu\n", (unsigned long long) n);
        smp_context_unref(ctx);
        return 0;
}
"""


class PkgConfig(unittest.TestCase):
    def test_outside_program(self):
        # Under /tmp, never inside the build tree: the program must not
        # count as one of the build's.
        with tempfile.TemporaryDirectory(prefix="smpgw-pkgconfig-") as tmp:
            dest = os.path.join(tmp, "dest")
            subprocess.run([MESON, "install", "-C", BUILD_ROOT, "--destdir", dest, "--no-rebuild", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)

            pcs = glob.glob(os.path.join(dest, "**", "pkgconfig", "libsmpgw.pc"), recursive=True)
            self.assertEqual(len(pcs), 1, pcs)
            # As if installed with --prefix=<dest><prefix>: the .pc's prefix
            # moved there (--define-variable would move every package's).
            with open(pcs[0]) as f:
                pc = f.read().splitlines()
            prefix = next(line.split("=", 1)[1] for line in pc if line.startswith("prefix="))
            pc_dir = os.path.join(tmp, "pkgconfig")
            os.mkdir(pc_dir)
            with open(os.path.join(pc_dir, "libsmpgw.pc"), "w") as f:
                f.write("\n".join("prefix=" + dest + prefix if line.startswith("prefix=") else line
                                  for line in pc) + "\n")
            env = dict(os.environ, PKG_CONFIG_PATH=pc_dir)
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libsmpgw"], check=True,
                                   capture_output=True, text=True, env=env).stdout.split()

            headers = set(os.listdir(os.path.join(dest + prefix, "include", "smpgw")))
            self.assertEqual(headers, PUBLIC_HEADERS)

            src = os.path.join(tmp, "outside.c")
            exe = os.path.join(tmp, "outside")
            with open(src, "w") as f:
                f.write(PROGRAM)
            # A sanitized libsmpgw needs the sanitizer runtime first in the
            # program, as any program linking it would.
            sanitize = ["-fsanitize=" + SANITIZE] if SANITIZE not in ("", "none") else []
            subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", src, "-o", exe] + sanitize + flags,
                           check=True)

            libdir = next(flag[2:] for flag in flags if flag.startswith("-L"))
            plugins = os.path.join(libdir, "smpgw", "plugins")
            run = subprocess.run([exe, plugins], capture_output=True, text=True,
                                 env=dict(os.environ, LD_LIBRARY_PATH=libdir))
            self.assertEqual(run.returncode, 0, run.stderr)
            out = run.stdout.splitlines()
            for name in ("serial", "udp"):
                self.assertIn("transport " + name, out)
            self.assertIn("canonical udp:127.0.0.1:1337,mtu=512", out)
            self.assertIn("refused no port after '127.0.0.1' (udp:HOST:PORT)", out)
            self.assertIn("frame 9", out)
            self.assertIn("number 4096", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
