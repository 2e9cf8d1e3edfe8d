/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A device's user-set fields changed as one (device-patch.h).  The setters
 * check their own field when called alone (D-Bus sets one at a time); a
 * request that sets several must not have the first saved and announced
 * when a later one is refused, so every check runs here first: the
 * setters' own checks (distribution.h), and the name's, whose sentence is
 * engine_device_rename()'s.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "device-patch.h"
#include "device.h"
#include "distribution.h"
#include "smpgwd-limits.h"
#include "util.h"

_printf_(5, 6) static int fail(struct engine_error *e, int error, const char *field, ssize_t index, const char *fmt,
                               ...) {
        va_list ap;

        e->error = error;
        e->field = field;
        e->index = index;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return error;
}

static void error_reset(struct engine_error *e) {
        *e = (struct engine_error) { .index = -1 };
}

static int name_check(const char *name, struct engine_error *e) {
        if (name && *name && device_name_check(name) < 0)
                return fail(e, -EINVAL, "name", -1,
                            "'name' must be at most %d bytes of UTF-8 without control characters.", DEVICE_NAME_MAX);
        return 0;
}

int engine_device_patch(struct manager *m, struct device *d, const struct engine_device_patch *p,
                        struct engine_error *e) {
        int r;

        error_reset(e);
        /* The checks look at the device as it is: no field's check
         * depends on another field of the same request (a role needs a
         * device that is no mesh target, a direct device one that is,
         * whatever either field says), so checking all before setting any
         * refuses exactly what setting them one by one would. */
        if (p->set_name && (r = name_check(p->name, e)) < 0)
                return r;
        if (p->set_role && (r = engine_device_role_check(m, d, p->role, e)) < 0)
                return r;
        if (p->set_direct && (r = engine_mesh_target_direct_check(m, d, p->direct, e)) < 0)
                return r;

        if (p->set_name && (r = engine_device_rename(m, d, p->name, e)) < 0)
                return r;
        if (p->set_role && (r = engine_device_set_role(m, d, p->role, e)) < 0)
                return r;
        if (p->set_direct && (r = engine_mesh_target_set_direct(m, d, p->direct, e)) < 0)
                return r;
        return 0;
}
