/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libsmpgw: everything public, in one include. */
#pragma once

#include <smpgw/smp-frame.h>
#include <smpgw/smp-serial.h>
#include <smpgw/smp-cbor.h>
#include <smpgw/smp-error.h>
#include <smpgw/smp-os.h>
#include <smpgw/smp-img.h>
#include <smpgw/smp-stat.h>
#include <smpgw/mcuboot-image.h>
