/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection slots of the ble transport: per adapter, one Connect in
 * flight at a time (BlueZ aborts a second one with
 * le-connection-abort-by-local) until its device is Connected or
 * Connect() returns, whichever is first (bluetoothd 5.62-5.87 answers an
 * LE Connect() in att_connect_cb(), once the ATT channel is up, before
 * service discovery; a slower answer must not hold the next connection
 * back), and at most max_connections links; links waiting for a slot
 * queue in order.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bluez.h"

struct adapter_slot *adapter_get(struct smp_transport_instance *i, const char *path) {
        for (struct adapter_slot *a = i->adapters; a; a = a->next)
                if (streq(a->path, path))
                        return a;
        struct adapter_slot *a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->instance = i;
        snprintf(a->path, sizeof(a->path), "%s", path);
        a->next = i->adapters;
        i->adapters = a;
        return a;
}

/* Every link is closed by now: the slots hold nothing. */
void adapters_free(struct smp_transport_instance *i) {
        while (i->adapters) {
                struct adapter_slot *a = i->adapters;
                i->adapters = a->next;
                free(a);
        }
}


void adapter_wait_remove(struct smp_link *l) {
        if (!l->slot)
                return;
        for (struct smp_link **p = &l->slot->waiting; *p; p = &(*p)->wait_next)
                if (*p == l) {
                        *p = l->wait_next;
                        l->wait_next = NULL;
                        return;
                }
}

void link_release_connect(struct smp_link *l) {
        if (!l->holds_connect)
                return;
        l->holds_connect = false;
        if (l->slot->connecting == l)
                l->slot->connecting = NULL;
        link_process_slot(l->slot);
}

void link_release_slot(struct smp_link *l) {
        if (!l->slot)
                return;
        adapter_wait_remove(l);
        if (l->holds_connect) {
                l->holds_connect = false;
                if (l->slot->connecting == l)
                        l->slot->connecting = NULL;
        }
        if (l->holds_slot) {
                l->holds_slot = false;
                l->slot->links--;
        }
        struct adapter_slot *a = l->slot;
        l->slot = NULL;
        link_process_slot(a);
}

void link_process_slot(struct adapter_slot *a) {
        while (a->waiting && !a->connecting && a->links < a->instance->max_connections) {
                struct smp_link *l = a->waiting;
                a->waiting = l->wait_next;
                l->wait_next = NULL;
                if (!l->holds_slot) {
                        l->holds_slot = true;
                        a->links++;
                }
                link_call_connect(l);
        }
}
