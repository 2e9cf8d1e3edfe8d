/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The system bus connection the ble links of one event loop share, and
 * BlueZ's objects as its signals leave them.
 *
 * A connection of its own per link cost every open a new connection to
 * the bus (authentication, Hello), four AddMatch calls and a
 * GetManagedObjects of every object BlueZ has, tens of milliseconds each
 * with a hundred devices known.  Instead the links on one loop share one
 * connection with one set of matches; GetManagedObjects is called once
 * (and again after bluetoothd came back), and InterfacesAdded,
 * InterfacesRemoved and PropertiesChanged keep what it answered: each
 * Device1 (address, adapter, Connected, ServicesResolved) and each SMP
 * characteristic (MTU).  A link opened on a loaded cache finds its device
 * there.  The signals go on to the links on the connection.
 *
 * Links and lingering Disconnects hold a reference; the last one closes
 * the connection.  A connection that dropped is not handed to new links.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluez.h"

struct ble_object {
        struct ble_object *next;
        bool device; /* else the SMP characteristic */
        char path[192];
        char address[18];
        char adapter[64];
        bool connected, resolved;
        bool has_mtu;
        uint16_t mtu;
};

static void cache_clear(struct ble_bus *b) {
        while (b->objects) {
                struct ble_object *o = b->objects;
                b->objects = o->next;
                free(o);
        }
}

static struct ble_object *cache_find(struct ble_bus *b, const char *path) {
        for (struct ble_object *o = b->objects; o; o = o->next)
                if (streq(o->path, path))
                        return o;
        return NULL;
}

static void cache_apply(struct ble_object *o, const struct dev_props *p) {
        if (p->has_connected)
                o->connected = p->connected;
        if (p->has_resolved)
                o->resolved = p->resolved;
        if (p->has_mtu) {
                o->has_mtu = true;
                o->mtu = p->mtu;
        }
}

/* iface_fn: a Device1 or the SMP characteristic comes (or is listed). */
static int cache_add(void *ctx, const char *path, const char *iface, const struct dev_props *p) {
        struct ble_bus *b = ctx;
        bool device = streq(iface, DEVICE_IFACE);

        if (device ? !p->address || !p->adapter
                   : !streq(iface, CHRC_IFACE) || !p->uuid || strcasecmp(p->uuid, SMP_CHRC_UUID) != 0)
                return 0;
        struct ble_object *o = cache_find(b, path);
        if (!o) {
                o = calloc(1, sizeof(*o));
                if (!o)
                        return -ENOMEM;
                /* A path longer than a link keeps is of no use to one. */
                if ((size_t) snprintf(o->path, sizeof(o->path), "%s", path) >= sizeof(o->path)) {
                        free(o);
                        return 0;
                }
                o->next = b->objects;
                b->objects = o;
        }
        o->device = device;
        if (device) {
                snprintf(o->address, sizeof(o->address), "%s", p->address);
                snprintf(o->adapter, sizeof(o->adapter), "%s", p->adapter);
        }
        cache_apply(o, p);
        return 0;
}

static void cache_remove(struct ble_bus *b, const char *path) {
        for (struct ble_object **p = &b->objects; *p; p = &(*p)->next)
                if (streq((*p)->path, path)) {
                        struct ble_object *o = *p;
                        *p = o->next;
                        free(o);
                        return;
                }
}

void ble_bus_lookup(struct ble_bus *b, iface_fn fn, void *ctx) {
        /* Devices first: a characteristic is matched below its device. */
        for (int pass = 0; pass < 2; pass++)
                for (struct ble_object *o = b->objects; o; o = o->next) {
                        if (o->device != (pass == 0))
                                continue;
                        struct dev_props p = {
                                .has_connected = o->device,
                                .connected = o->connected,
                                .has_resolved = o->device,
                                .resolved = o->resolved,
                                .has_mtu = o->has_mtu,
                                .mtu = o->mtu,
                        };
                        if (o->device) {
                                p.address = o->address;
                                p.adapter = o->adapter;
                        } else
                                p.uuid = SMP_CHRC_UUID;
                        (void) fn(ctx, o->path, o->device ? DEVICE_IFACE : CHRC_IFACE, &p);
                }
}

/* ---- the links on the connection ---- */

void ble_bus_add_link(struct ble_bus *b, struct smp_link *l) {
        l->sbus = ble_bus_ref(b);
        l->bus = b->bus;
        l->bus_next = b->links;
        b->links = l;
}

void ble_bus_remove_link(struct smp_link *l) {
        struct ble_bus *b = l->sbus;
        if (!b)
                return;
        for (struct smp_link **p = &b->links; *p; p = &(*p)->bus_next)
                if (*p == l) {
                        *p = l->bus_next;
                        break;
                }
        l->bus_next = NULL;
        l->bus = NULL;
        l->sbus = NULL;
        ble_bus_unref(b);
}

/* The links on b, each held: a link's handler may fail it, and its user
 * close others.  NULL with *ret_n 0 when there are none (or no memory:
 * the signal is lost to them, as sd-bus loses one then). */
static struct smp_link **links_take(struct ble_bus *b, size_t *ret_n) {
        size_t n = 0, i = 0;

        *ret_n = 0;
        for (struct smp_link *l = b->links; l; l = l->bus_next)
                n++;
        if (n == 0)
                return NULL;
        struct smp_link **links = calloc(n, sizeof(*links));
        if (!links)
                return NULL;
        for (struct smp_link *l = b->links; l; l = l->bus_next)
                links[i++] = link_ref(l);
        *ret_n = i;
        return links;
}

/* The first link on b still looking its device up.  Each caller moves it
 * on (lookup or failure) and asks again from the start: the list may
 * change meanwhile, and nothing needs allocating. */
static struct smp_link *link_looking_up(struct ble_bus *b) {
        for (struct smp_link *l = b->links; l; l = l->bus_next)
                if (l->state == ST_LOOKUP)
                        return l;
        return NULL;
}

/* Hands m to each link on b. */
static void dispatch(struct ble_bus *b, sd_bus_message *m, void (*fn)(struct smp_link *l, sd_bus_message *m)) {
        size_t n;
        _cleanup_free_ struct smp_link **links = links_take(b, &n);

        for (size_t i = 0; i < n; i++) {
                if (links[i]->sbus == b && sd_bus_message_rewind(m, true) >= 0)
                        fn(links[i], m);
                link_unref(links[i]);
        }
}

/* ---- GetManagedObjects ---- */

static void load_failed(struct ble_bus *b, int err) {
        struct smp_link *l;

        b->cache = CACHE_EMPTY;
        cache_clear(b);
        while ((l = link_looking_up(b))) {
                _cleanup_(link_unrefp) _unused_ struct smp_link *ref = link_ref(l);
                link_fail(l, err);
        }
}

static int on_managed_objects(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        int r;

        b->load_call = sd_bus_slot_unref(b->load_call);
        r = reply_errno(b->instance, b, "GetManagedObjects", m);
        if (r >= 0) {
                /* Newer than any signal before it: it replaces them. */
                cache_clear(b);
                r = read_managed_objects(m, cache_add, b);
        }
        if (r < 0)
                load_failed(b, r);
        else {
                struct smp_link *l;
                b->cache = CACHE_READY;
                /* The links that waited for it (a lookup always moves
                 * one on; bluetoothd leaving meanwhile empties the
                 * objects again, and the rest wait for the next load). */
                while (b->cache == CACHE_READY && (l = link_looking_up(b))) {
                        _cleanup_(link_unrefp) _unused_ struct smp_link *ref = link_ref(l);
                        link_lookup(l);
                }
        }
        ble_bus_unref(b);
        return 0;
}

static int bus_load(struct ble_bus *b) {
        b->cache = CACHE_LOADING;
        b->load_call = sd_bus_slot_unref(b->load_call);
        int r = sd_bus_call_method_async(b->bus, &b->load_call, BLUEZ, "/", OM_IFACE, "GetManagedObjects",
                                         on_managed_objects, b, NULL);
        if (r < 0)
                b->cache = CACHE_EMPTY;
        return r;
}

int ble_bus_start_lookup(struct ble_bus *b, struct smp_link *l) {
        switch (b->cache) {
        case CACHE_READY:
                /* Not from within open(): the lookup may fail the link. */
                return link_set_timer(l, 0, on_lookup);
        case CACHE_LOADING:
                return 0;
        case CACHE_EMPTY:
        default:
                return bus_load(b);
        }
}

/* ---- signals ---- */

static void bus_unlist(struct ble_bus *b);

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        int r = reply_errno(b->instance, b, "AddMatch", m);
        if (r < 0) {
                /* Without its signals the objects would go stale: the
                 * links waiting for them fail, new ones get a new
                 * connection. */
                bus_unlist(b);
                b->load_call = sd_bus_slot_unref(b->load_call);
                load_failed(b, r);
        }
        ble_bus_unref(b);
        return 0;
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        const char *path;

        if (b->cache != CACHE_EMPTY && sd_bus_message_read_basic(m, 'o', &path) > 0 &&
            read_ifaces(m, path, cache_add, b) < 0)
                ble_debug(b->instance, b, "InterfacesAdded %s: not kept", path);
        dispatch(b, m, link_on_interfaces_added);
        ble_bus_unref(b);
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        const char *path, *iface;

        if (sd_bus_message_read_basic(m, 'o', &path) > 0 && sd_bus_message_enter_container(m, 'a', "s") > 0) {
                while (sd_bus_message_read_basic(m, 's', &iface) > 0)
                        if (streq(iface, DEVICE_IFACE) || streq(iface, CHRC_IFACE)) {
                                cache_remove(b, path);
                                break;
                        }
        }
        dispatch(b, m, link_on_interfaces_removed);
        ble_bus_unref(b);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        const char *path = sd_bus_message_get_path(m), *iface;
        struct ble_object *o = path ? cache_find(b, path) : NULL;
        struct dev_props p = {};

        if (o && sd_bus_message_read_basic(m, 's', &iface) > 0 && streq(iface, o->device ? DEVICE_IFACE : CHRC_IFACE) &&
            read_props(m, &p) >= 0)
                cache_apply(o, &p);
        dispatch(b, m, link_on_properties_changed);
        ble_bus_unref(b);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct ble_bus *b = ble_bus_ref(userdata);
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && streq(name, BLUEZ)) {
                /* Another bluetoothd has other objects: forget these; a
                 * new one is asked for its own. */
                b->load_call = sd_bus_slot_unref(b->load_call);
                b->cache = CACHE_EMPTY;
                cache_clear(b);
                dispatch(b, m, link_on_name_owner_changed);
                if (new_owner && *new_owner && b->cache == CACHE_EMPTY && b->bus)
                        (void) bus_load(b);
        }
        ble_bus_unref(b);
        return 0;
}

/* ---- the connection ---- */

struct ble_bus *ble_bus_ref(struct ble_bus *b) {
        b->n_ref++;
        return b;
}

static void bus_unlist(struct ble_bus *b) {
        if (!b->listed)
                return;
        for (struct ble_bus **p = &b->instance->buses; *p; p = &(*p)->next)
                if (*p == b) {
                        *p = b->next;
                        break;
                }
        b->next = NULL;
        b->listed = false;
}

void ble_buses_forget(struct smp_transport_instance *i) {
        while (i->buses)
                bus_unlist(i->buses);
}

struct ble_bus *ble_bus_unref(struct ble_bus *b) {
        if (!b || --b->n_ref > 0)
                return NULL;
        bus_unlist(b);
        b->match_added = sd_bus_slot_unref(b->match_added);
        b->match_removed = sd_bus_slot_unref(b->match_removed);
        b->match_props = sd_bus_slot_unref(b->match_props);
        b->match_owner = sd_bus_slot_unref(b->match_owner);
        b->load_call = sd_bus_slot_unref(b->load_call);
        cache_clear(b);
        if (b->bus) {
                /* Queued messages (a Disconnect) go out before it closes. */
                (void) sd_bus_flush(b->bus);
                b->bus = sd_bus_close_unref(b->bus);
        }
        sd_event_unref(b->event);
        free(b);
        return NULL;
}

void ble_bus_unrefp(struct ble_bus **b) {
        if (*b)
                ble_bus_unref(*b);
}

int ble_bus_get(struct smp_transport_instance *i, sd_event *event, struct ble_bus **ret) {
        for (struct ble_bus *b = i->buses, *next; b; b = next) {
                next = b->next;
                if (b->event != event)
                        continue;
                if (sd_bus_is_open(b->bus) > 0) {
                        *ret = ble_bus_ref(b);
                        return 0;
                }
                /* It dropped: its links fail on their own, new ones get
                 * a new connection. */
                ble_debug(i, b, "the system bus connection dropped");
                bus_unlist(b);
        }

        _cleanup_(ble_bus_unrefp) struct ble_bus *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->instance = i;
        b->n_ref = 1;
        b->event = sd_event_ref(event);
        int r = sd_bus_open_system(&b->bus);
        if (r >= 0)
                r = sd_bus_attach_event(b->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal_async(b->bus, &b->match_added, BLUEZ, NULL, OM_IFACE, "InterfacesAdded",
                                              on_interfaces_added, NULL, b);
        if (r >= 0)
                r = sd_bus_match_signal_async(b->bus, &b->match_removed, BLUEZ, NULL, OM_IFACE, "InterfacesRemoved",
                                              on_interfaces_removed, NULL, b);
        if (r >= 0)
                r = sd_bus_add_match_async(b->bus, &b->match_props,
                                           "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE
                                           "',member='PropertiesChanged',path_namespace='/org/bluez'",
                                           on_properties_changed, on_match_installed, b);
        if (r >= 0)
                r = sd_bus_add_match_async(
                        b->bus, &b->match_owner,
                        "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                        "member='NameOwnerChanged',arg0='" BLUEZ "'",
                        on_name_owner_changed, NULL, b);
        if (r < 0)
                return r;
        /* The matches go out first: the bus applies them before it
         * passes GetManagedObjects on, so no change falls between. */
        b->listed = true;
        b->next = i->buses;
        i->buses = b;
        *ret = TAKE_PTR(b);
        return 0;
}
