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
#include <ctype.h>
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
#include "log.h"
#include "manager.h"
#include "smpgw/smp-transport.h"
#include "smpgwd-config.h"
#include "util.h"

/* Longest image name AddImage() takes: a file name, not a document. */
#define IMAGE_NAME_MAX 255

/* The one errno → D-Bus error table of the API.  An errno means the same
 * in every method (the model's functions agree on them: -ENOENT nothing
 * by that name, -EBUSY something is running, ...); the message says the
 * rest.  Anything not listed is org.freedesktop.DBus.Error.Failed. */
static const sd_bus_error_map dbus_errors[] = {
        SD_BUS_ERROR_MAP(SMPGW_DBUS_ERROR_NOT_FOUND, ENOENT),
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

int dbus_find_image(struct manager *m, const char *ref, struct image **ret, sd_bus_error *error) {
        int r = manager_lookup_image(m, ref, ret);

        switch (r) {
        case 0:
                return 0;
        case -EINVAL:
                return dbus_error_set(error, r,
                                      "'%s' is not an image id (64 hex digits) nor a prefix of at least %d of them.",
                                      ref, IMAGE_ID_PREFIX_MIN);
        case -ENOTUNIQ:
                return dbus_error_set(error, r, "Image prefix '%s' fits more than one image; give more of its digits.",
                                      ref);
        default:
                return dbus_error_set(error, -ENOENT, "No image '%s'.", ref);
        }
}

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

int dbus_read_push_options(const struct manager *m, sd_bus_message *message, struct job_options *ret,
                           sd_bus_error *error) {
        const struct config *c = m->config;
        struct job_options opts = {
                .mode = c->job_mode,
                .max_attempts = 0,
        };
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "mode")) {
                        const char *mode;

                        r = read_option_value(message, key, SD_BUS_TYPE_STRING, &mode, error);
                        if (r < 0)
                                return r;
                        r = smp_update_mode_from_string(mode);
                        if (r < 0)
                                return dbus_error_set(error, -EINVAL,
                                                      "Unknown mode '%s'; modes are test-and-confirm, "
                                                      "confirm-only, test-only and upload-only.",
                                                      mode);
                        opts.mode = (enum smp_update_mode) r;
                } else if (streq(key, "attempts")) {
                        uint32_t attempts;

                        r = read_option_value(message, key, SD_BUS_TYPE_UINT32, &attempts, error);
                        if (r < 0)
                                return r;
                        if (attempts < 1 || attempts > 100)
                                return dbus_error_set(error, -EINVAL,
                                                      "Option 'attempts' must be between 1 and 100, not %" PRIu32 ".",
                                                      attempts);
                        opts.max_attempts = attempts;
                } else
                        return dbus_error_set(error, -EINVAL,
                                              "Unknown option '%s'; options are 'mode' (s) and 'attempts' (u).",
                                              key);
                r = sd_bus_message_exit_container(message);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = opts;
        return 0;
}

/* ---- org.smpgw.Manager1 ---- */

/* A device named by a client: its decimal id, else its connection
 * string. */
static struct device *device_from_spec(struct manager *m, const char *spec) {
        if (spec[0] >= '1' && spec[0] <= '9' && strspn(spec, "0123456789") == strlen(spec)) {
                char *end;
                errno = 0;
                unsigned long long id = strtoull(spec, &end, 10);
                if (errno != 0 || *end)
                        return NULL;
                return manager_find_device(m, id);
        }
        return manager_find_device_by_conn(m, spec);
}

static bool image_name_is_valid(const char *name) {
        if (strlen(name) > IMAGE_NAME_MAX)
                return false;
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

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
        _cleanup_free_ char *reason = NULL;
        char path[SMPGW_DBUS_PATH_MAX];
        struct image *img = NULL;
        bool created = false;
        int r;

        r = image_store_add_fd(api->manager, tmp_fd, name && name[0] ? name : NULL, &img, &created, &reason);
        if (r < 0) {
                /* the store's reasons are clauses ("not a valid MCUboot
                 * image: ..."); D-Bus messages are sentences */
                const char *why = reason && reason[0] ? reason : strerror(-r);
                return dbus_error_set(error, r, "%c%s.", toupper((unsigned char) why[0]), why + 1);
        }
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
        const char *name;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(message, "hs", &fd, &name);
        if (r < 0)
                return r;
        if (!image_name_is_valid(name))
                return dbus_error_set(error, -EINVAL,
                                      "The image name must be at most %d characters without control characters.",
                                      IMAGE_NAME_MAX);
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
        struct device *d = NULL;
        const char *conn;
        int r;

        r = sd_bus_message_read(message, "s", &conn);
        if (r < 0)
                return r;
        r = manager_add_device(api->manager, conn, "dbus", &d);
        switch (r) {
        case -EEXIST:
                break;   /* known already: d is that device */
        case -EINVAL:
                return dbus_error_set(error, r,
                                      "'%s' is not a connection string (scheme:address, e.g. udp:192.0.2.1:1337).",
                                      conn);
        case -ENOENT:
                return dbus_error_set(error, r, "No transport plugin for the scheme of '%s'.", conn);
        case -E2BIG:
                return dbus_error_set(error, r, "The device limit (max_count in [devices]) is reached.");
        default:
                if (r < 0)
                        return dbus_error_set(error, r, "Cannot add device '%s': %s.", conn, strerror(-r));
        }
        return sd_bus_reply_method_return(message, "o", dbus_device_path(d->id, path));
}

static int method_get_image(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        char path[SMPGW_DBUS_PATH_MAX];
        struct image *img;
        const char *ref;
        int r;

        r = sd_bus_message_read(message, "s", &ref);
        if (r < 0)
                return r;
        r = dbus_find_image(api->manager, ref, &img, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "o", dbus_image_path(img->id, path));
}

static int device_id_compare(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int method_push(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        struct manager *m = api->manager;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ struct device **devices = NULL;
        _cleanup_free_ struct job **jobs = NULL;
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n_devices = 0, n_jobs = 0;
        struct job_options opts;
        const char *image_id, *spec;
        struct image *img;
        int r;

        /* Everything is checked before the first job is created, so a
         * refused call leaves nothing behind. */
        r = sd_bus_message_read(message, "s", &image_id);
        if (r < 0)
                return r;
        r = dbus_find_image(m, image_id, &img, error);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(message, "s", &spec)) > 0) {
                struct device *d = device_from_spec(m, spec);
                if (!d)
                        return dbus_error_set(error, -ENOENT, "No device '%s'.", spec);
                /* Every device is known, so a longer list repeats one. */
                if (n_devices >= m->n_devices)
                        return dbus_error_set(error, -EINVAL, "Device '%s' is named twice.", spec);
                if (!devices) {
                        devices = calloc(m->n_devices, sizeof(*devices));
                        ids = calloc(m->n_devices, sizeof(*ids));
                        if (!devices || !ids)
                                return -ENOMEM;
                }
                devices[n_devices] = d;
                ids[n_devices++] = d->id;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        if (n_devices == 0)
                return dbus_error_set(error, -EINVAL, "No devices given.");

        r = dbus_read_push_options(m, message, &opts, error);
        if (r < 0)
                return r;

        qsort(ids, n_devices, sizeof(*ids), device_id_compare);
        for (size_t i = 1; i < n_devices; i++)
                if (ids[i] == ids[i - 1])
                        return dbus_error_set(error, -EINVAL, "Device %" PRIu64 " is named twice.", ids[i]);
        /* One pass over the jobs rather than one per device: a push to
         * the whole fleet stays linear. */
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *j = m->jobs[i];
                if (job_is_finished(j) || !bsearch(&j->device_id, ids, n_devices, sizeof(*ids), device_id_compare))
                        continue;
                return dbus_error_set(error, -EBUSY, "Device %" PRIu64 " has an unfinished job (%" PRIu64 ", %s).",
                                      j->device_id, j->id, job_state_to_string(j->state));
        }

        jobs = calloc(n_devices, sizeof(*jobs));
        if (!jobs)
                return -ENOMEM;
        for (size_t i = 0; i < n_devices; i++) {
                r = job_create(m, img, devices[i], &opts, &jobs[n_jobs]);
                if (r < 0)
                        break;
                n_jobs++;
        }
        if (r < 0) {
                /* Cannot happen short of running out of memory, as
                 * everything job_create() refuses was checked above; the
                 * jobs created so far are cancelled, not left running
                 * for a call that failed. */
                for (size_t i = 0; i < n_jobs; i++)
                        (void) job_cancel(jobs[i]);
                return dbus_error_set(error, r, "Cannot create a job for device %" PRIu64 ": %s.",
                                      devices[n_jobs]->id, strerror(-r));
        }
        log_info("Push of image %s to %zu device(s) requested over D-Bus.", img->id, n_jobs);

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_jobs; i++) {
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
        int r;

        r = smp_transport_list(&transports);
        if (r < 0)
                return r;
        return sd_bus_message_append_strv(reply, transports);
}

static unsigned count_jobs_running(const struct manager *m) {
        unsigned n = 0;
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->state == JOB_RUNNING)
                        n++;
        return n;
}

static int property_get_jobs_running(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct dbus_api *api = userdata;
        return sd_bus_message_append(reply, "u", count_jobs_running(api->manager));
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
        unsigned n = count_jobs_running(api->manager);
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

        api->jobs_running_emitted = count_jobs_running(m);
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
