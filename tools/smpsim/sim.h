/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulator as a whole: the event loop, the devices, the endpoints. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "sim-device.h"

#define SIM_DEVICES_MAX 10000u
/* Largest datagram read: larger than any netbuf, so the device model (not
 * the socket) decides what is too large. */
#define SIM_RX_BUF_SIZE 65536u

struct sim {
        sd_event *event;
        int verbosity;
        struct sim_device *devices;
        unsigned n_devices;
        struct sim_blob *default_image;
        char *serial_dir;          /* where the pty symlinks go */
        void *coap;                /* struct sim_coap */
        void *ble;                 /* struct sim_ble */
        int control_fd;
        sd_event_source *control_source;
        char *control_path;
        void *control_conns;       /* open control connections */
        uint8_t rx_buf[SIM_RX_BUF_SIZE];   /* scratch for every receive */
};

struct sim_device *sim_device_by_index(struct sim *sim, long index);
