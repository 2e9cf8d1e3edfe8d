/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SMP over a serial console on a pseudo-terminal per device, with a
 * stable symlink DIR/smpsim-NNNN pointing at its /dev/pts/N. */
#pragma once

#include "sim.h"

int sim_serial_open(struct sim *sim, struct sim_device *d, const char *dir);
void sim_serial_send(struct sim_device *d, const uint8_t *frame, size_t len);
void sim_serial_close(struct sim_device *d);
