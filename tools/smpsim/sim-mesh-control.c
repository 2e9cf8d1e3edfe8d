/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Distributor's control-socket commands (mesh-state, mesh-fault,
 * mesh-clear-faults, mesh-version, mesh-set).  They belong to smpsim, the
 * host program, not to the device model: they look devices up in the
 * host's struct sim, which the in-process test transport does not have.
 */
#include <stdint.h>

#include <jansson.h>

#include "sim-device.h"
#include "sim-mesh.h"
#include "sim.h"
#include "smpgw/smp-parse.h"
#include "util.h"
/* ------------------------------------------------------------------ */
/* Control socket                                                      */

static json_t *error_reply(const char *msg) {
        return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *sim_mesh_command(struct sim *sim, int argc, char **argv) {
        const char *err = NULL;
        bool all;
        uint64_t idx = 0;

        if (argc < 2)
                return error_reply("missing device (an index or 'all')");
        all = streq(argv[1], "all");
        if (!all && (smp_parse_uint(argv[1], 0, UINT32_MAX, &idx) < 0 || !sim_device_by_index(sim, (long) idx)))
                return error_reply("no such device");
        if (!all && !sim_device_by_index(sim, (long) idx)->mesh)
                return error_reply("not a Distributor (--mesh-distributor)");

        if (streq(argv[0], "mesh-state")) {
                if (all)
                        return error_reply("mesh-state takes one device");
                return sim_mesh_state(sim_device_by_index(sim, (long) idx)->mesh);
        }
        if (streq(argv[0], "mesh-fault") || streq(argv[0], "mesh-version")) {
                if (argc != 3)
                        return error_reply(streq(argv[0], "mesh-fault") ? "usage: mesh-fault DEV|all target=ADDR:SPEC"
                                                                        : "usage: mesh-version DEV|all [target=ADDR:]VERSION");
        } else if (!streq(argv[0], "mesh-clear-faults") && !streq(argv[0], "mesh-set"))
                return error_reply("unknown command (mesh-state, mesh-fault, mesh-clear-faults, mesh-version, mesh-set)");

        for (unsigned i = all ? 0 : (unsigned) idx; i < (all ? sim->n_devices : (unsigned) idx + 1); i++) {
                struct sim_mesh *m = sim->devices[i].mesh;
                if (!m)
                        continue;
                if (streq(argv[0], "mesh-fault")) {
                        if (sim_mesh_fault_apply(m, argv[2], &err) < 0)
                                return error_reply(err);
                } else if (streq(argv[0], "mesh-version")) {
                        if (sim_mesh_version_apply(m, argv[2], &err) < 0)
                                return error_reply(err);
                } else if (streq(argv[0], "mesh-clear-faults"))
                        sim_mesh_clear_faults(m);
                else
                        for (int k = 2; k < argc; k++) {
                                char *eq = strchr(argv[k], '=');
                                if (!eq)
                                        return error_reply("expected KEY=VALUE");
                                *eq = 0;
                                int r = sim_mesh_set(m, argv[k], eq + 1, &err);
                                *eq = '=';
                                if (r < 0)
                                        return error_reply(err);
                        }
        }
        return json_pack("{s:b}", "ok", 1);
}
