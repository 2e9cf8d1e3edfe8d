/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libsmpgw: everything public, in one include.  Build with
 * `pkg-config --cflags --libs libsmpgw`. */
#pragma once

#include <smpgw/smp-frame.h>
#include <smpgw/smp-serial.h>
#include <smpgw/smp-cbor.h>
#include <smpgw/smp-error.h>
#include <smpgw/smp-os.h>
#include <smpgw/smp-img.h>
#include <smpgw/smp-stat.h>
#include <smpgw/smp-omp.h>
#include <smpgw/mcuboot-image.h>
#include <smpgw/smp-parse.h>
#include <smpgw/smp-conn.h>
#include <smpgw/smp-transport.h>
#include <smpgw/smp-context.h>
#include <smpgw/smp-discovery.h>
#include <smpgw/smp-session.h>
#include <smpgw/smp-upload.h>
#include <smpgw/smp-update.h>
#include <smpgw/smp-shell.h>
#include <smpgw/mesh-dfu.h>
