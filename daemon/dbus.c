/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus front end: the connection (system, session or an address,
 * config.bus), the name org.smpgw, the ObjectManager at /org/smpgw,
 * org.smpgw.Manager1 there, and the signals that follow the model
 * (InterfacesAdded/Removed, PropertiesChanged) from the manager's
 * observer events.  The per-object interfaces are in dbus-objects.c;
 * dbus/org.smpgw.xml is the contract both follow.
 *
 * Access control is the bus policy's job (dbus/org.smpgw.conf: root and
 * group smpgw may call methods, everybody may read), so every method is
 * flagged SD_BUS_VTABLE_UNPRIVILEGED: sd-bus's own check would otherwise
 * refuse group members that are neither root nor our user.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "config.h"
#include "dbus-internal.h"
#include "dbus.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-context.h"
#include "smpgwd-config.h"
#include "util.h"

/* The one errno → D-Bus error table of the API.  An errno means the same
 * in every method (the model's functions agree on them: -ENOENT nothing
 * by that name, -EBUSY something is running, ...); the message says the
 * rest.  Anything not listed is org.freedesktop.DBus.Error.Failed. */
static const sd_bus_error_map dbus_errors[] = {
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_NOT_FOUND, ENOENT),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_NOT_FOUND, EPROTONOSUPPORT),   /* no transport for a scheme */
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_INVALID_IMAGE, EBADMSG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_INVALID_IMAGE, EFBIG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_SIGNATURE_INVALID, EKEYREJECTED),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_TOO_MANY, E2BIG),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_ALREADY_FINISHED, EALREADY),
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_AMBIGUOUS, ENOTUNIQ),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_INVALID_ARGS, EINVAL),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_NO_MEMORY, ENOMEM),
        SD_BUS_ERROR_MAP(SD_BUS_ERROR_TIMEOUT, ETIMEDOUT),
        SD_BUS_ERROR_MAP_END,
};

int dbus_error_set(sd_bus_error *error, int r, const char *fmt, ...) {
        const char *name = SD_BUS_ERROR_FAILED;
        va_list ap;

        for (const sd_bus_error_map *e = dbus_errors; e->name; e++)
                if (e->code == -r) {
                        name = e->name;
                        break;
                }
        va_start(ap, fmt);
        (void) sd_bus_error_setfv(error, name, fmt, ap);
        va_end(ap);
        return r;
}

int dbus_error_set_engine(sd_bus_error *error, const struct engine_error *e) {
        return dbus_error_set(error, e->error, "%s", e->message);
}

const char *dbus_device_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_DEVICE_PREFIX "/%" PRIu64, id);
        return buf;
}

const char *dbus_image_path(const char *id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_IMAGE_PREFIX "/%s", id);
        return buf;
}

const char *dbus_job_path(uint64_t id, char buf[static SMPGW_DBUS_PATH_MAX]) {
        snprintf(buf, SMPGW_DBUS_PATH_MAX, SMPGW_DBUS_JOB_PREFIX "/%" PRIu64, id);
        return buf;
}

/* ---- shared by Manager1.Push() and Device1.Push() ---- */

/* Enters the variant of an option and reads its one basic value, or says
 * which type the option wants. */
static int read_option_value(sd_bus_message *message, const char *key, char type, void *ret,
                             sd_bus_error *error) {
        const char contents[2] = { type, 0 };
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_VARIANT, contents);
        if (r < 0)
                return dbus_error_set(error, -EINVAL, "Option '%s' must be of type '%s'.", key, contents);
        r = sd_bus_message_read_basic(message, type, ret);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

static int read_push_option(sd_bus_message *message, const char *key, struct engine_push *push,
                            sd_bus_error *error) {
        uint32_t attempts;
        int r;

        if (streq(key, "mode"))
                return read_option_value(message, key, SD_BUS_TYPE_STRING, &push->mode, error);
        if (streq(key, "attempts")) {
                r = read_option_value(message, key, SD_BUS_TYPE_UINT32, &attempts, error);
                if (r < 0)
                        return r;
                push->has_attempts = true;
                push->attempts = attempts;
                return 0;
        }
        return dbus_error_set(error, -EINVAL, "Unknown option '%s'; options are 'mode' (s) and 'attempts' (u).", key);
}

int dbus_read_push_options(sd_bus_message *message, struct engine_push *push, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                r = read_push_option(message, key, push, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

/* ---- org.smpgw.Manager1 ---- */

/* Copies the caller's file into a temporary file of the image store,
 * which the store then takes in place.  Never the caller's file itself:
 * the store uses an unlinked read-write file on its own file system in
 * place, and a caller keeping such an fd could rewrite the image after
 * it was validated.  pread() leaves the caller's file offset alone, and
 * the whole file is read whatever that offset is. */
static int copy_caller_file(struct manager *m, int fd, int *ret_fd, sd_bus_error *error) {
        const uint64_t max = m->config->image_max_size;
        _cleanup_close_ int tmp = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        const size_t block = 64 * 1024;
        uint64_t offset = 0;
        int r;

        r = image_store_open_tmp(m, &tmp);
        if (r < 0)
                return dbus_error_set(error, r, "Cannot create a file in the image store: %s.", strerror(-r));
        buf = malloc(block);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = pread(fd, buf, block, (off_t) offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return dbus_error_set(error, -EBADMSG, "Cannot read the image file: %s.", strerror(errno));
                if (n == 0)
                        break;
                offset += (uint64_t) n;
                if (offset > max)
                        return dbus_error_set(error, -EFBIG, "The image is larger than the limit of %" PRIu64 " bytes.",
                                              max);
                for (size_t done = 0; done < (size_t) n;) {
                        ssize_t w = write(tmp, buf + done, (size_t) n - done);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return dbus_error_set(error, -errno, "Cannot write into the image store: %s.",
                                                      strerror(errno));
                        done += (size_t) w;
                }
        }
        *ret_fd = TAKE_FD(tmp);
        return 0;
}

/* Answers AddImage() for a store temporary file holding the image. */
static int add_image_reply(struct dbus_api *api, sd_bus_message *message, int tmp_fd, const char *name,
                           sd_bus_error *error) {
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct image *img;
        bool created;
        int r;

        r = engine_image_add(api->manager, tmp_fd, name, &img, &created, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "osb", dbus_image_path(img->id, path), img->id, created);
}

/* A pipe or socket is read on the loop as data comes, into a store
 * temporary file, and AddImage() is answered at its end.  A writer that
 * never finishes costs a file descriptor until IMAGE_STREAM_TIMEOUT,
 * never the loop. */
#define IMAGE_STREAM_TIMEOUT_USEC (120 * 1000000ull)
#define IMAGE_STREAMS_MAX 8u

struct image_stream {
        struct dbus_api *api;
        struct image_stream *next;
        sd_bus_message *message;    /* the call, answered at the end */
        char *name;
        int in_fd, tmp_fd;
        uint64_t size;
        sd_event_source *io, *timer;
};

static void image_stream_free(struct image_stream *st) {
        struct image_stream **p;

        for (p = &st->api->streams; *p && *p != st; p = &(*p)->next)
                ;
        if (*p)
                *p = st->next;
        sd_event_source_disable_unref(st->io);
        sd_event_source_disable_unref(st->timer);
        if (st->in_fd >= 0)
                close(st->in_fd);
        if (st->tmp_fd >= 0)
                close(st->tmp_fd);
        sd_bus_message_unref(st->message);
        free(st->name);
        free(st);
}

static void image_stream_fail(struct image_stream *st, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void image_stream_fail(struct image_stream *st, int r, const char *fmt, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        (void) dbus_error_set(&error, r, "%s", msg);
        (void) sd_bus_reply_method_error(st->message, &error);
        image_stream_free(st);
}

static int on_image_stream_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct image_stream *st = userdata;
        image_stream_fail(st, -ETIMEDOUT, "The image stream did not end within %llu s.",
                          (unsigned long long) (IMAGE_STREAM_TIMEOUT_USEC / 1000000u));
        return 0;
}

static int on_image_stream_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct image_stream *st = userdata;
        const uint64_t max = st->api->manager->config->image_max_size;
        uint8_t buf[64 * 1024];

        for (;;) {
                ssize_t n = read(st->in_fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0) {
                        image_stream_fail(st, -EBADMSG, "Cannot read the image stream: %s.", strerror(errno));
                        return 0;
                }
                if (n == 0)
                        break;
                st->size += (uint64_t) n;
                if (st->size > max) {
                        image_stream_fail(st, -EFBIG, "The image is larger than the limit of %" PRIu64 " bytes.",
                                          max);
                        return 0;
                }
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = write(st->tmp_fd, buf + done, (size_t) (n - done));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0) {
                                image_stream_fail(st, -errno, "Cannot write into the image store: %s.",
                                                  strerror(errno));
                                return 0;
                        }
                        done += w;
                }
        }

        /* End of the stream: validate and store. */
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = add_image_reply(st->api, st->message, st->tmp_fd, st->name, &error);
        if (r < 0)
                (void) sd_bus_reply_method_error(st->message, &error);
        image_stream_free(st);
        return 0;
}

static int image_stream_start(struct dbus_api *api, sd_bus_message *message, int fd, const char *name,
                              sd_bus_error *error) {
        struct manager *m = api->manager;
        unsigned n = 0;
        int r;

        for (struct image_stream *st = api->streams; st; st = st->next)
                n++;
        if (n >= IMAGE_STREAMS_MAX)
                return dbus_error_set(error, -EBUSY, "%u images are being streamed in already; try again later.",
                                      IMAGE_STREAMS_MAX);
        struct image_stream *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->api = api;
        st->in_fd = st->tmp_fd = -1;
        st->next = api->streams;
        api->streams = st;
        st->message = sd_bus_message_ref(message);
        st->name = strdup(name);
        /* Our own descriptor (the message's goes with it), non-blocking
         * without touching the caller's file status flags: reopen it
         * through /proc where that works, else duplicate it. */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        st->in_fd = open(proc, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (st->in_fd < 0) {
                st->in_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (st->in_fd >= 0)
                        (void) fcntl(st->in_fd, F_SETFL, fcntl(st->in_fd, F_GETFL) | O_NONBLOCK);
        }
        if (!st->name || st->in_fd < 0) {
                r = st->name ? -errno : -ENOMEM;
                image_stream_free(st);
                return dbus_error_set(error, -EBADMSG, "Cannot read the file descriptor: %s.", strerror(-r));
        }
        r = image_store_open_tmp(m, &st->tmp_fd);
        if (r >= 0)
                r = sd_event_add_io(m->event, &st->io, st->in_fd, EPOLLIN, on_image_stream_io, st);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &st->timer, CLOCK_MONOTONIC, IMAGE_STREAM_TIMEOUT_USEC, 0,
                                               on_image_stream_timeout, st);
        if (r < 0) {
                image_stream_free(st);
                return dbus_error_set(error, r, "Cannot receive the image: %s.", strerror(-r));
        }
        return 1;   /* answered when the stream ends */
}

static int method_add_image(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        _cleanup_close_ int copy = -1;
        struct engine_error e;
        const char *name;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(message, "hs", &fd, &name);
        if (r < 0)
                return r;
        /* Before reading the image, not after. */
        if (engine_image_name_check(name, &e) < 0)
                return dbus_error_set_engine(error, &e);
        if (fstat(fd, &st) < 0)
                return dbus_error_set(error, -EBADMSG, "Cannot inspect the file descriptor: %s.", strerror(errno));
        /* A regular file (memfds included) is read at once; a pipe or
         * socket as its writer delivers, so one whose writer never
         * finishes cannot stop our one loop. */
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
                return image_stream_start(api, message, fd, name, error);
        if (!S_ISREG(st.st_mode))
                return dbus_error_set(error, -EBADMSG,
                                      "The file descriptor is neither a file nor a pipe or socket.");
        if ((uint64_t) st.st_size > api->manager->config->image_max_size)
                return dbus_error_set(error, -EFBIG, "The image is larger than the limit of %" PRIu64 " bytes.",
                                      api->manager->config->image_max_size);

        r = copy_caller_file(api->manager, fd, &copy, error);
        if (r < 0)
                return r;
        return add_image_reply(api, message, copy, name, error);
}

static int method_add_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct device *d;
        const char *conn;
        bool created;
        int r;

        r = sd_bus_message_read(message, "s", &conn);
        if (r < 0)
                return r;
        /* A device known already is answered as it is. */
        r = engine_device_add(api->manager, conn, "dbus", &d, &created, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", dbus_device_path(d->id, path));
}

static int method_get_image(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct image *img;
        const char *ref;
        int r;

        r = sd_bus_message_read(message, "s", &ref);
        if (r < 0)
                return r;
        r = engine_image_find(api->manager, "id", ref, &img, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "o", dbus_image_path(img->id, path));
}

/* The device specs of Push(), as strings of the message (valid while it
 * is); more than PUSH_DEVICES_MAX are counted, not kept: the engine
 * refuses them by the count. */
static int read_device_specs(sd_bus_message *message, const char ***ret, size_t *ret_n) {
        _cleanup_free_ const char **specs = NULL;
        size_t n = 0, alloc = 0;
        const char *spec;
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(message, "s", &spec)) > 0) {
                if (n < PUSH_DEVICES_MAX && n == alloc) {
                        const char **g = realloc(specs, MAX(alloc * 2, (size_t) 16) * sizeof(*specs));
                        if (!g)
                                return -ENOMEM;
                        specs = g;
                        alloc = MAX(alloc * 2, (size_t) 16);
                }
                if (n < PUSH_DEVICES_MAX)
                        specs[n] = spec;
                n++;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(specs);
        *ret_n = n;
        return 0;
}

static int reply_job_paths(sd_bus_message *message, struct job **jobs, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char path[SMPGW_DBUS_PATH_MAX];
                r = sd_bus_message_append(reply, "o", dbus_job_path(jobs[i]->id, path));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_push(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        _cleanup_free_ const char **specs = NULL;
        _cleanup_free_ struct job **jobs = NULL;
        struct engine_push push = { .devices_listed = true };
        struct engine_error e;
        int r;

        r = sd_bus_message_read(message, "s", &push.image);
        if (r < 0)
                return r;
        r = read_device_specs(message, &specs, &push.n_devices);
        if (r < 0)
                return r;
        push.devices = specs;
        r = dbus_read_push_options(message, &push, error);
        if (r < 0)
                return r;
        r = engine_push(api->manager, &push, &jobs, &e);
        if (r < 0)
                return dbus_error_set_engine(error, &e);
        return reply_job_paths(message, jobs, push.n_devices);
}

static int method_scan(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        int r;

        r = manager_scan(api->manager);
        if (r == -ENOTCONN)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "Discovery is disabled in the configuration ([discovery] enabled=no).");
        /* A round already running is what the caller asked for. */
        if (r < 0 && r != -EALREADY)
                return dbus_error_set(error, r, "Cannot start a discovery round: %s.", strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_transports(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_(smp_strv_freep) char **transports = NULL;
        struct dbus_api *api = userdata;
        int r;

        r = smp_context_list_transports(api->manager->smp, &transports);
        if (r < 0)
                return r;
        return sd_bus_message_append_strv(reply, transports);
}

static int property_get_jobs_running(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        return sd_bus_message_append(reply, "u", jobs_count_running(api->manager));
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Transports", "as", property_get_transports, 0, 0),
        SD_BUS_PROPERTY("JobsRunning", "u", property_get_jobs_running, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("AddImage", SD_BUS_ARGS("h", fd, "s", name),
                                SD_BUS_RESULT("o", image, "s", id, "b", created), method_add_image,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddDevice", SD_BUS_ARGS("s", conn), SD_BUS_RESULT("o", device),
                                method_add_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetImage", SD_BUS_ARGS("s", id), SD_BUS_RESULT("o", image), method_get_image,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Push", SD_BUS_ARGS("s", image, "as", devices, "a{sv}", options),
                                SD_BUS_RESULT("ao", jobs), method_push, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Scan", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_scan,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- signals from the model's events ---- */

static void emit_added(struct dbus_api *api, const char *path, const char *interface) {
        int r = sd_bus_emit_interfaces_added(api->bus, path, interface, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesAdded for %s, ignoring: %m", path);
}

/* The interface is named, so nothing has to look the object up: the
 * manager tells us before it frees it, but it may be out of its arrays
 * already. */
static void emit_removed(struct dbus_api *api, const char *path, const char *interface) {
        int r = sd_bus_emit_interfaces_removed(api->bus, path, interface, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesRemoved for %s, ignoring: %m", path);
}

/* names NULL: every property flagged EMITS_CHANGE. */
static void emit_changed(struct dbus_api *api, const char *path, const char *interface, char **names) {
        int r = sd_bus_emit_properties_changed_strv(api->bus, path, interface, names);
        if (r < 0)
                log_debug_errno(r, "Cannot emit PropertiesChanged for %s, ignoring: %m", path);
}

static void emit_jobs_running(struct dbus_api *api) {
        unsigned n = jobs_count_running(api->manager);
        if (n == api->jobs_running_emitted)
                return;
        api->jobs_running_emitted = n;
        emit_changed(api, SMPGW_DBUS_ROOT, SMPGW_DBUS_MANAGER_IFACE, (char *[]) { (char *) "JobsRunning", NULL });
}

/* What a job's start or end changes elsewhere: its device's Job, its
 * image's InUse, the manager's JobsRunning. */
static void emit_job_related(struct dbus_api *api, const struct job *j) {
        char path[SMPGW_DBUS_PATH_MAX];

        if (manager_find_device(api->manager, j->device_id))
                emit_changed(api, dbus_device_path(j->device_id, path), SMPGW_DBUS_DEVICE_IFACE,
                             (char *[]) { (char *) "Job", NULL });
        if (manager_find_image(api->manager, j->image_id))
                emit_changed(api, dbus_image_path(j->image_id, path), SMPGW_DBUS_IMAGE_IFACE,
                             (char *[]) { (char *) "InUse", NULL });
        emit_jobs_running(api);
}

static void on_manager_event(struct manager *m, const struct manager_event *ev, void *userdata) {
        struct dbus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];

        switch (ev->type) {
        case MANAGER_EVENT_DEVICE_ADDED:
                emit_added(api, dbus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE);
                break;
        case MANAGER_EVENT_DEVICE_CHANGED:
                emit_changed(api, dbus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE, NULL);
                break;
        case MANAGER_EVENT_DEVICE_REMOVED:
                emit_removed(api, dbus_device_path(ev->device->id, path), SMPGW_DBUS_DEVICE_IFACE);
                break;
        case MANAGER_EVENT_IMAGE_ADDED:
                emit_added(api, dbus_image_path(ev->image->id, path), SMPGW_DBUS_IMAGE_IFACE);
                break;
        case MANAGER_EVENT_IMAGE_REMOVED:
                emit_removed(api, dbus_image_path(ev->image->id, path), SMPGW_DBUS_IMAGE_IFACE);
                break;
        case MANAGER_EVENT_JOB_ADDED:
                emit_added(api, dbus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE);
                emit_job_related(api, ev->job);
                break;
        case MANAGER_EVENT_JOB_STATE:
                emit_changed(api, dbus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE, NULL);
                emit_job_related(api, ev->job);
                break;
        case MANAGER_EVENT_JOB_PROGRESS:
                emit_changed(api, dbus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE,
                             (char *[]) { (char *) "BytesSent", (char *) "BytesTotal", (char *) "Progress",
                                          (char *) "Rate", (char *) "Updated", NULL });
                break;
        case MANAGER_EVENT_JOB_REMOVED:
                emit_removed(api, dbus_job_path(ev->job->id, path), SMPGW_DBUS_JOB_IFACE);
                break;
        case _MANAGER_EVENT_MAX:
                break;
        }
}

/* ---- the connection ---- */

static int bus_open(const struct config *c, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        switch (c->bus) {
        case CONFIG_BUS_SYSTEM:
                /* honours $DBUS_SYSTEM_BUS_ADDRESS */
                return sd_bus_open_system_with_description(ret, "smpgwd");
        case CONFIG_BUS_SESSION:
                return sd_bus_open_user_with_description(ret, "smpgwd");
        case CONFIG_BUS_ADDRESS:
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, c->bus_address);
                if (r < 0)
                        return r;
                r = sd_bus_set_bus_client(bus, 1);
                if (r < 0)
                        return r;
                r = sd_bus_set_description(bus, "smpgwd");
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(bus);
                return 0;
        case CONFIG_BUS_NONE:
        default:
                return -EINVAL;
        }
}

static const char *bus_describe(const struct config *c) {
        switch (c->bus) {
        case CONFIG_BUS_SYSTEM:
                return "the system bus";
        case CONFIG_BUS_SESSION:
                return "the session bus";
        case CONFIG_BUS_ADDRESS:
                return c->bus_address;
        case CONFIG_BUS_NONE:
        default:
                return "no bus";
        }
}

struct dbus_api *dbus_api_free(struct dbus_api *api) {
        if (!api)
                return NULL;
        if (api->observing)
                manager_remove_observer(api->manager, on_manager_event, api);
        while (api->streams)
                image_stream_fail(api->streams, -ESHUTDOWN, "smpgwd is stopping.");
        /* The vtables' slots are floating: they go with the connection,
         * which also gives up the name. */
        sd_bus_flush_close_unref(api->bus);
        free(api);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct dbus_api *, dbus_api_free);

int dbus_api_start(struct manager *m, struct dbus_api **ret) {
        _cleanup_(dbus_api_freep) struct dbus_api *api = NULL;
        const struct config *c = m->config;
        int r;

        if (c->bus == CONFIG_BUS_NONE) {
                *ret = NULL;
                return 0;
        }

        api = calloc(1, sizeof(*api));
        if (!api)
                return log_error_errno(-ENOMEM, "Cannot start the D-Bus API: %m");
        api->manager = m;

        r = bus_open(c, &api->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to %s: %m", bus_describe(c));

        r = sd_bus_add_object_manager(api->bus, NULL, SMPGW_DBUS_ROOT);
        if (r < 0)
                return log_error_errno(r, "Cannot add the D-Bus object manager: %m");
        r = sd_bus_add_object_vtable(api->bus, NULL, SMPGW_DBUS_ROOT, SMPGW_DBUS_MANAGER_IFACE, manager_vtable,
                                     api);
        if (r < 0)
                return log_error_errno(r, "Cannot add the %s interface: %m", SMPGW_DBUS_MANAGER_IFACE);
        r = dbus_objects_register(api);
        if (r < 0)
                return log_error_errno(r, "Cannot add the D-Bus object interfaces: %m");

        r = sd_bus_attach_event(api->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the D-Bus connection to the event loop: %m");
        /* Without the bus nobody can reach this API again (a new
         * connection would lose every client's matches), so do what
         * systemd's daemons do: end the loop and let the unit's
         * Restart= bring us back once the bus is there. */
        r = sd_bus_set_exit_on_disconnect(api->bus, true);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the D-Bus connection: %m");

        api->jobs_running_emitted = jobs_count_running(m);
        r = manager_add_observer(m, on_manager_event, api);
        if (r < 0)
                return log_error_errno(r, "Cannot follow the manager's events: %m");
        api->observing = true;

        /* Synchronously, so READY=1 goes out only once clients can find
         * us by name (integration.md (f)). */
        r = sd_bus_request_name(api->bus, SMPGW_DBUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "The name %s is owned by another process on %s.", SMPGW_DBUS_NAME,
                                       bus_describe(c));
        if (r == -EACCES || r == -EPERM)
                return log_error_errno(r,
                                       "The bus policy does not let this user own %s on %s "
                                       "(is %s installed, and the bus reloaded?): %m",
                                       SMPGW_DBUS_NAME, bus_describe(c), "org.smpgw.conf");
        if (r < 0)
                return log_error_errno(r, "Cannot acquire the name %s on %s: %m", SMPGW_DBUS_NAME, bus_describe(c));

        log_info("D-Bus API on %s as %s.", bus_describe(c), SMPGW_DBUS_NAME);
        *ret = TAKE_PTR(api);
        return 0;
}
