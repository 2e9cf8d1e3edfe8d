/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Closing a ble link: Disconnect, then let the bus go.
 *
 * A closed link's hold on the shared bus connection (bluez-shared.c)
 * stays until BlueZ answered its Disconnect (the last holder closes the
 * connection, and one closed right after sending may lose the message),
 * at most LINGER_USEC.  Kept in the instance's list, so a new link to the
 * same device waits for the Disconnect to complete before it connects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluez.h"

struct ble_linger {
        struct smp_transport_instance *instance;
        struct ble_linger *next;
        struct ble_bus *bus;
        sd_bus_slot *slot;
        sd_event_source *timer;
        sd_event *event;
        uint64_t until;          /* CLOCK_MONOTONIC */
        char device_path[128];
};

/* One whose loop no longer runs does not count past LINGER_USEC. */
bool linger_pending(struct smp_transport_instance *i, sd_event *event, const char *device_path) {
        uint64_t now;
        if (sd_event_now(event, CLOCK_MONOTONIC, &now) < 0)
                return false;
        for (struct ble_linger *g = i->lingers; g; g = g->next)
                if (g->event == event && g->until > now && streq(g->device_path, device_path))
                        return true;
        return false;
}

static void linger_free(struct ble_linger *g) {
        for (struct ble_linger **p = &g->instance->lingers; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        g->slot = sd_bus_slot_unref(g->slot);
        g->timer = sd_event_source_disable_unref(g->timer);
        g->bus = ble_bus_unref(g->bus);
        free(g);
}

static int on_linger_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_linger *g = userdata;
        (void) reply_errno(g->instance, g, "Disconnect", m);
        linger_free(g);
        return 0;
}

static int on_linger_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        linger_free(userdata);
        return 0;
}

void linger_start(struct smp_link *l) {
        struct ble_linger *g = calloc(1, sizeof(*g));
        int r;

        if (!g) {
                (void) sd_bus_call_method_async(l->bus, NULL, BLUEZ, l->device_path, DEVICE_IFACE, "Disconnect",
                                                NULL, NULL, NULL);
                return;
        }
        g->instance = l->instance;
        snprintf(g->device_path, sizeof(g->device_path), "%s", l->device_path);
        g->event = l->event;   /* the bus keeps a reference */
        if (sd_event_now(l->event, CLOCK_MONOTONIC, &g->until) >= 0)
                g->until += LINGER_USEC;
        r = sd_bus_call_method_async(l->bus, &g->slot, BLUEZ, l->device_path, DEVICE_IFACE, "Disconnect",
                                     on_linger_reply, g, NULL);
        if (r >= 0)
                r = sd_event_add_time_relative(l->event, &g->timer, CLOCK_MONOTONIC, LINGER_USEC, 0,
                                               on_linger_timeout, g);
        ble_debug(l->instance, l, "Disconnect %s: %s", l->device_path, r < 0 ? strerror(-r) : "sent");
        g->bus = ble_bus_ref(l->sbus);
        g->next = l->instance->lingers;
        l->instance->lingers = g;
        if (r < 0)
                linger_free(g);
}

/* The instance goes: Disconnects still unanswered are flushed out now. */
void lingers_free(struct smp_transport_instance *i) {
        while (i->lingers)
                linger_free(i->lingers);
}
