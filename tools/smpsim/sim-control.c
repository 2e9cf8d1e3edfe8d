/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sim-ble.h"
#include "sim-control.h"
#include "sim-mesh.h"
#include "smpgw/smp-parse.h"
#include "util.h"

#define CONTROL_LINE_MAX 4096

struct control_conn {
        struct control_conn *next, **prevp;  /* in sim->control_conns */
        struct sim *sim;
        sd_event_source *source;
        char line[CONTROL_LINE_MAX];
        size_t len;
};

static int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        return smp_parse_uint(s, 0, max, ret) < 0 ? -EINVAL : 0;
}

int sim_device_set(struct sim_device *d, const char *key, const char *value, const char **ret_error) {
        uint64_t v;

        if (streq(key, "bandwidth") || streq(key, "flash-rate") || streq(key, "erase-rate")) {
                if (sim_parse_rate(value, &v) < 0) {
                        *ret_error = "expected bytes per second (k/M/G suffixes allowed)";
                        return -EINVAL;
                }
                if (streq(key, "bandwidth"))
                        d->link.bandwidth = v;
                else if (streq(key, "flash-rate"))
                        d->params.flash_rate = v;
                else
                        d->params.erase_rate = v;
                return 0;
        }
        if (streq(key, "loss")) {
                char *end;
                double p = strtod(value, &end);
                if (*value == 0 || *end || !(p >= 0 && p <= 1)) {
                        *ret_error = "expected a probability between 0 and 1";
                        return -EINVAL;
                }
                d->link.loss = p;
                return 0;
        }
        struct {
                const char *name;
                uint64_t min, max;
                uint32_t *target;
        } table[] = {
                { "latency", 0, 600000, &d->link.latency_ms },
                { "jitter", 0, 600000, &d->link.jitter_ms },
                { "mtu", 0, 65535, &d->link.mtu },
                { "buf-size", 32, 65535, &d->params.buf_size },
                { "buf-count", 1, 64, &d->params.buf_count },
                { "swap-ms", 0, 3600000, &d->params.swap_ms },
                { "boot-ms", 0, 3600000, &d->params.boot_ms },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (!streq(key, table[i].name))
                        continue;
                if (parse_uint(value, table[i].max, &v) < 0 || v < table[i].min) {
                        *ret_error = "value out of range";
                        return -EINVAL;
                }
                *table[i].target = (uint32_t) v;
                return 0;
        }
        if (streq(key, "smp-version")) {
                if (!streq(value, "1") && !streq(value, "2")) {
                        *ret_error = "smp-version is 1 or 2";
                        return -EINVAL;
                }
                d->params.smp_version = value[0] - '0';
                return 0;
        }
        *ret_error = "unknown setting";
        return -EINVAL;
}

static json_t *device_state_packed(struct sim_device *d) {
        json_t *slots = json_array();
        for (int i = 0; i < 2; i++) {
                struct sim_image_info info;
                const struct sim_slot *s = &d->flash.slot[i];
                json_t *o = json_pack("{s:i, s:b, s:b, s:b, s:b}", "slot", i,
                                      "erased", s->blob == NULL, "magic", s->magic,
                                      "image_ok", s->image_ok, "copy_done", s->copy_done);
                if (sim_flash_read_info(&d->flash, i, &info) == 0) {
                        char version[64], h[65];
                        sim_image_version_string(&info, version, sizeof(version));
                        hex_encode(info.hash, 32, h);
                        unsigned flags = sim_flash_slot_flags(&d->flash, i);
                        json_object_set_new(o, "version", json_string(version));
                        json_object_set_new(o, "hash", json_string(h));
                        json_object_set_new(o, "active", json_boolean(flags & SIM_SLOT_F_ACTIVE));
                        json_object_set_new(o, "confirmed", json_boolean(flags & SIM_SLOT_F_CONFIRMED));
                        json_object_set_new(o, "pending", json_boolean(flags & SIM_SLOT_F_PENDING));
                        json_object_set_new(o, "permanent", json_boolean(flags & SIM_SLOT_F_PERMANENT));
                }
                json_array_append_new(slots, o);
        }
        char faults[512];
        sim_faults_describe(&d->faults, faults, sizeof(faults));
        /* clang-format off */
        return json_pack(
                "{s:b, s:i, s:s, s:i, s:o, s:s, s:s, s:s, s:i, s:b, s:b,"
                " s:{s:b, s:I, s:I},"
                " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
                " s:{s:I, s:i, s:i, s:f, s:i},"
                " s:{s:i, s:i, s:i, s:i}}",
                "ok", 1, "device", d->index, "name", d->name, "port", d->port, "slots", slots,
                "swap_type", sim_swap_type_to_string(sim_flash_swap_type(&d->flash)),
                "last_boot", sim_boot_result_to_string(d->last_boot),
                "faults", faults[0] == ' ' ? faults + 1 : faults,
                "boot_count", d->boot_count, "rebooting", d->rebooting, "silent", d->silent,
                "upload", "active", d->upload.active, "off", (json_int_t) d->upload.off,
                "size", (json_int_t) d->upload.size,
                "stats", "rx_packets", (json_int_t) d->stats.rx_packets,
                "tx_packets", (json_int_t) d->stats.tx_packets,
                "rx_bytes", (json_int_t) d->stats.rx_bytes, "tx_bytes", (json_int_t) d->stats.tx_bytes,
                "dropped_loss", (json_int_t) d->stats.dropped_loss,
                "dropped_mtu", (json_int_t) d->stats.dropped_mtu,
                "dropped_netbuf", (json_int_t) d->stats.dropped_netbuf,
                "dropped_too_big", (json_int_t) d->stats.dropped_too_big,
                "dropped_fault", (json_int_t) d->stats.dropped_fault,
                "upload_bytes", (json_int_t) d->stats.upload_bytes,
                "resets", (json_int_t) d->stats.resets,
                "link", "bandwidth", (json_int_t) d->link.bandwidth, "latency", (int) d->link.latency_ms,
                "jitter", (int) d->link.jitter_ms, "loss", d->link.loss, "mtu", (int) d->link.mtu,
                "params", "smp_version", d->params.smp_version, "buf_size", (int) d->params.buf_size,
                "buf_count", (int) d->params.buf_count, "swap_ms", (int) d->params.swap_ms);
        /* clang-format on */
}

static json_t *device_state(struct sim_device *d) {
        json_t *st = device_state_packed(d);
        if (st)
                json_object_set_new(json_object_get(st, "stats"), "refused_netbuf",
                                    json_integer((json_int_t) d->stats.refused_netbuf));
        return st;
}

static json_t *error_reply(const char *msg) {
        return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* Runs fn on the device named by arg ("all" or an index). */
#define FOR_DEVICES(sim, arg, d, body)                                                   \
        do {                                                                             \
                if (streq(arg, "all")) {                                                 \
                        for (unsigned _i = 0; _i < (sim)->n_devices; _i++) {             \
                                struct sim_device *d = &(sim)->devices[_i];              \
                                body;                                                    \
                        }                                                                \
                } else {                                                                 \
                        uint64_t _idx;                                                   \
                        if (parse_uint(arg, UINT32_MAX, &_idx) < 0 ||                    \
                            !sim_device_by_index(sim, (long) _idx))                      \
                                return error_reply("no such device");                    \
                        struct sim_device *d = sim_device_by_index(sim, (long) _idx);    \
                        body;                                                            \
                }                                                                        \
        } while (0)

static json_t *run_command(struct sim *sim, char *line) {
        char *argv[32];
        int argc = 0;
        for (char *tok = strtok(line, " \t\r"); tok && argc < 32; tok = strtok(NULL, " \t\r"))
                argv[argc++] = tok;
        if (argc == 0)
                return error_reply("empty command");

        const char *err = NULL;
        if (strncmp(argv[0], "ble-", 4) == 0)
                return sim_ble_command(sim, argc, argv);
        if (strncmp(argv[0], "mesh-", 5) == 0)
                return sim_mesh_command(sim, argc, argv);
        if (streq(argv[0], "list"))
                return json_pack("{s:b, s:i}", "ok", 1, "devices", sim->n_devices);
        if (argc < 2)
                return error_reply("missing device (an index or 'all')");

        if (streq(argv[0], "state")) {
                uint64_t idx;
                if (parse_uint(argv[1], UINT32_MAX, &idx) < 0 || !sim_device_by_index(sim, (long) idx))
                        return error_reply("no such device");
                return device_state(sim_device_by_index(sim, (long) idx));
        }
        if (streq(argv[0], "set")) {
                for (int i = 2; i < argc; i++) {
                        char *eq = strchr(argv[i], '=');
                        if (!eq)
                                return error_reply("expected KEY=VALUE");
                        *eq = 0;
                        FOR_DEVICES(sim, argv[1], d, {
                                if (sim_device_set(d, argv[i], eq + 1, &err) < 0)
                                        return error_reply(err);
                        });
                }
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "fault")) {
                if (argc != 3)
                        return error_reply("usage: fault DEV|all SPEC");
                FOR_DEVICES(sim, argv[1], d, {
                        if (sim_fault_apply(argv[2], &d->faults, &err) < 0)
                                return error_reply(err);
                });
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "clear-faults")) {
                FOR_DEVICES(sim, argv[1], d, { sim_faults_init(&d->faults); });
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(argv[0], "reset")) {
                FOR_DEVICES(sim, argv[1], d, { sim_device_reboot(d, "control socket"); });
                return json_pack("{s:b}", "ok", 1);
        }
        return error_reply("unknown command (list, state, set, fault, clear-faults, reset, ble-..., mesh-...)");
}

static void conn_free(struct control_conn *c) {
        *c->prevp = c->next;
        if (c->next)
                c->next->prevp = c->prevp;
        int fd = sd_event_source_get_io_fd(c->source);
        c->source = sd_event_source_disable_unref(c->source);
        close(fd);
        free(c);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct control_conn *c = userdata;

        ssize_t n = read(fd, c->line + c->len, sizeof(c->line) - c->len);
        if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                conn_free(c);
                return 0;
        }
        c->len += (size_t) n;

        char *nl;
        while ((nl = memchr(c->line, '\n', c->len))) {
                *nl = 0;
                json_t *reply = run_command(c->sim, c->line);
                char *text = json_dumps(reply, JSON_COMPACT);
                json_decref(reply);
                if (text) {
                        /* answers are small; a client that does not read
                         * them loses them rather than stalling the loop */
                        (void) !write(fd, text, strlen(text));
                        (void) !write(fd, "\n", 1);
                        free(text);
                }
                size_t used = (size_t) (nl - c->line) + 1;
                memmove(c->line, nl + 1, c->len - used);
                c->len -= used;
        }
        if (c->len == sizeof(c->line)) {
                const char msg[] = "{\"ok\":false,\"error\":\"line too long\"}\n";
                (void) !write(fd, msg, sizeof(msg) - 1);
                conn_free(c);
        }
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sim *sim = userdata;
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        struct control_conn *c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return 0;
        }
        c->sim = sim;
        if (sd_event_add_io(sim->event, &c->source, cfd, EPOLLIN, on_conn_io, c) < 0) {
                close(cfd);
                free(c);
                return 0;
        }
        struct control_conn **head = (struct control_conn **) &sim->control_conns;
        c->next = *head;
        c->prevp = head;
        if (*head)
                (*head)->prevp = &c->next;
        *head = c;
        return 0;
}

int sim_control_open(struct sim *sim, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
                return -errno;
        int r = sd_event_add_io(sim->event, &sim->control_source, fd, EPOLLIN, on_accept, sim);
        if (r < 0)
                return r;
        sim->control_fd = TAKE_FD(fd);
        sim->control_path = strdup(path);
        return 0;
}

void sim_control_close(struct sim *sim) {
        while (sim->control_conns)
                conn_free(sim->control_conns);
        sim->control_source = sd_event_source_disable_unref(sim->control_source);
        if (sim->control_fd >= 0)
                close(sim->control_fd);
        sim->control_fd = -1;
        if (sim->control_path)
                (void) unlink(sim->control_path);
        free(sim->control_path);
        sim->control_path = NULL;
}
