/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* REST JSON bodies as smpgwd reads them (daemon/rest-body.c): the parse
 * every JSON body goes through (duplicates refused, an object required),
 * then the field checks of POST /devices, PATCH /devices/{id} and
 * POST /jobs, and for a push the engine's check of its options (mode,
 * attempts) as engine_push() makes it.
 *
 * Input: a selector byte (% 3: device add, device patch, push), then the
 * body's bytes. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "engine.h"
#include "manager.h"
#include "rest-body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What daemon/main.c defines for the log (the engine logs). */
int smpgwd_log_max_level = -1;
bool smpgwd_log_to_journal = false;

static void check_error(const struct rest_body_error *e) {
        assert(e->code);
        assert(strcmp(e->code, "invalid_json") == 0 || strcmp(e->code, "invalid_field") == 0 ||
               strcmp(e->code, "bad_request") == 0);
        assert(e->message[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct config config = { .job_mode = SMP_UPDATE_TEST_AND_CONFIRM };
        static struct manager manager = { .config = &config };
        struct rest_body_error e = {};
        json_t *body = NULL;
        int k;

        if (size < 1 || size > 65536)
                return 0;
        k = rest_body_parse((const char *) data + 1, size - 1, &body, &e);
        if (k < 0) {
                assert(k == -EINVAL);
                check_error(&e);
                return 0;
        }
        assert(json_is_object(body));

        switch (data[0] % 3) {
        case 0: {
                const char *conn = NULL;

                k = rest_body_device_add(body, &conn, &e);
                if (k < 0)
                        check_error(&e);
                else
                        assert(conn && *conn);
                break;
        }
        case 1: {
                const char *name = (const char *) 1;
                bool has_name = true;

                k = rest_body_device_patch(body, &has_name, &name, &e);
                if (k < 0)
                        check_error(&e);
                else if (!has_name)
                        assert(!name);
                else if (name)
                        (void) strlen(name);
                break;
        }
        default: {
                rest_device_spec *buf = NULL;
                const char **specs = NULL;
                struct engine_push push = {};
                struct engine_error ee;

                k = rest_body_push(body, &push, &buf, &specs, &e);
                if (k == -EINVAL)
                        check_error(&e);
                else if (k == 0) {
                        assert(push.image && *push.image);
                        assert(push.devices == specs);
                        for (size_t i = 0; i < push.n_devices && i <= PUSH_DEVICES_MAX; i++)
                                assert(specs[i] && *specs[i]);
                        if (engine_push_check_options(&manager, &push, &ee) < 0)
                                assert(ee.error == -EINVAL && ee.message[0]);
                }
                free(buf);
                free(specs);
                break;
        }
        }
        json_decref(body);
        return 0;
}
