/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.smpgw.Image1 at /org/smpgw/image/<hash> (64 hex digits), and
 * Manager1.AddImage(): reading the caller's file descriptor into the
 * image store, at once for a file, on the loop for a pipe or socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "conf.h"
#include "engine.h"
#include "image-boards.h"
#include "manager.h"
#include "util.h"

/* ---- Manager1.AddImage() ---- */

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
                return bus_error_set(error, r, "Cannot create a file in the image store: %s.", strerror(-r));
        buf = malloc(block);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = pread(fd, buf, block, (off_t) offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return bus_error_set(error, -EBADMSG, "Cannot read the image file: %s.", strerror(errno));
                if (n == 0)
                        break;
                offset += (uint64_t) n;
                if (offset > max)
                        return bus_error_set(error, -EFBIG, "The image is larger than the limit of %" PRIu64 " bytes.",
                                              max);
                for (size_t done = 0; done < (size_t) n;) {
                        ssize_t w = write(tmp, buf + done, (size_t) n - done);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return bus_error_set(error, -errno, "Cannot write into the image store: %s.",
                                                      strerror(errno));
                        done += (size_t) w;
                }
        }
        *ret_fd = TAKE_FD(tmp);
        return 0;
}

static size_t strv_count(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

/* AddImageWithOptions()'s options, owned (a stream outlives the call's
 * reading). */
struct add_options {
        bool set_boards;
        char **boards;
        size_t n_boards;
};

static void add_options_done(struct add_options *o) {
        image_boards_free(o->boards, o->n_boards);
        *o = (struct add_options) {};
}

/* "boards" (as): the boards the image is built for, checked here, before
 * the image is read. */
static int read_add_options(sd_bus_message *message, struct add_options *ret, sd_bus_error *error) {
        struct add_options o = {};
        struct engine_error e;
        int r;

        r = sd_bus_message_enter_container(message, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                _cleanup_(smp_strv_freep) char **boards = NULL;
                const char *key;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        goto fail;
                if (!streq(key, "boards")) {
                        r = bus_error_set(error, -EINVAL, "Unknown option '%s'; the option is 'boards' (as).", key);
                        goto fail;
                }
                if (o.set_boards) {
                        r = bus_error_set(error, -EINVAL, "Option 'boards' is given twice.");
                        goto fail;
                }
                r = sd_bus_message_enter_container(message, SD_BUS_TYPE_VARIANT, "as");
                if (r < 0) {
                        r = bus_error_set(error, -EINVAL, "Option 'boards' must be of type 'as'.");
                        goto fail;
                }
                r = sd_bus_message_read_strv(message, &boards);
                if (r >= 0)
                        r = sd_bus_message_exit_container(message);
                if (r >= 0)
                        r = sd_bus_message_exit_container(message);
                if (r < 0)
                        goto fail;
                size_t n = strv_count(boards);
                if (engine_image_boards_check((const char *const *) boards, n, &e) < 0) {
                        r = bus_error_set_engine(error, &e);
                        goto fail;
                }
                r = image_boards_normalize((const char *const *) boards, n, &o.boards, &o.n_boards, NULL);
                if (r < 0)
                        goto fail;
                o.set_boards = true;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(message);
        if (r < 0)
                goto fail;
        *ret = o;
        return 0;
fail:
        add_options_done(&o);
        return r;
}

/* Answers AddImage() for a store temporary file holding the image. */
static int add_image_reply(struct bus_api *api, sd_bus_message *message, int tmp_fd, const char *name,
                           const struct add_options *opts, sd_bus_error *error) {
        char path[SMPGW_DBUS_PATH_MAX];
        struct engine_error e;
        struct image *img;
        bool created;
        int r;

        r = engine_image_add_with_boards(api->manager, tmp_fd, name, opts->set_boards,
                                         (const char *const *) opts->boards, opts->n_boards, &img, &created, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, "osb", bus_image_path(img->id, path), img->id, created);
}

/* A pipe or socket is read on the loop as data comes, into a store
 * temporary file, and AddImage() is answered at its end.  A writer that
 * never finishes costs a file descriptor until IMAGE_STREAM_TIMEOUT,
 * never the loop. */
#define IMAGE_STREAM_TIMEOUT_USEC (120 * 1000000ull)

#define IMAGE_STREAMS_MAX 8u

struct image_stream {
        struct bus_api *api;
        struct image_stream *next;
        sd_bus_message *message;    /* the call, answered at the end */
        char *name;
        struct add_options opts;
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
        add_options_done(&st->opts);
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
        (void) bus_error_set(&error, r, "%s", msg);
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
        int r = add_image_reply(st->api, st->message, st->tmp_fd, st->name, &st->opts, &error);
        if (r < 0)
                (void) sd_bus_reply_method_error(st->message, &error);
        image_stream_free(st);
        return 0;
}

/* Takes *opts (left empty) whatever it returns. */
static int image_stream_start(struct bus_api *api, sd_bus_message *message, int fd, const char *name,
                              struct add_options *opts, sd_bus_error *error) {
        struct manager *m = api->manager;
        unsigned n = 0;
        int r;

        for (struct image_stream *st = api->streams; st; st = st->next)
                n++;
        if (n >= IMAGE_STREAMS_MAX) {
                add_options_done(opts);
                return bus_error_set(error, -EBUSY, "%u images are being streamed in already; try again later.",
                                      IMAGE_STREAMS_MAX);
        }
        struct image_stream *st = calloc(1, sizeof(*st));
        if (!st) {
                add_options_done(opts);
                return -ENOMEM;
        }
        st->opts = *opts;
        *opts = (struct add_options) {};
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
                return bus_error_set(error, -EBADMSG, "Cannot read the file descriptor: %s.", strerror(-r));
        }
        r = image_store_open_tmp(m, &st->tmp_fd);
        if (r >= 0)
                r = sd_event_add_io(m->event, &st->io, st->in_fd, EPOLLIN, on_image_stream_io, st);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &st->timer, CLOCK_MONOTONIC, IMAGE_STREAM_TIMEOUT_USEC, 0,
                                               on_image_stream_timeout, st);
        if (r < 0) {
                image_stream_free(st);
                return bus_error_set(error, r, "Cannot receive the image: %s.", strerror(-r));
        }
        return 1;   /* answered when the stream ends */
}

/* AddImage() and AddImageWithOptions(): the same but for the options. */
static int add_image(sd_bus_message *message, struct bus_api *api, bool with_options, sd_bus_error *error) {
        _cleanup_(add_options_done) struct add_options opts = {};
        _cleanup_close_ int copy = -1;
        struct engine_error e;
        const char *name;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(message, "hs", &fd, &name);
        if (r < 0)
                return r;
        if (with_options) {
                r = read_add_options(message, &opts, error);
                if (r < 0)
                        return r;
        }
        /* Before reading the image, not after. */
        if (engine_image_name_check(name, &e) < 0)
                return bus_error_set_engine(error, &e);
        if (fstat(fd, &st) < 0)
                return bus_error_set(error, -EBADMSG, "Cannot inspect the file descriptor: %s.", strerror(errno));
        /* A regular file (memfds included) is read at once; a pipe or
         * socket as its writer delivers, so one whose writer never
         * finishes cannot stop our one loop. */
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
                return image_stream_start(api, message, fd, name, &opts, error);
        if (!S_ISREG(st.st_mode))
                return bus_error_set(error, -EBADMSG,
                                      "The file descriptor is neither a file nor a pipe or socket.");
        if ((uint64_t) st.st_size > api->manager->config->image_max_size)
                return bus_error_set(error, -EFBIG, "The image is larger than the limit of %" PRIu64 " bytes.",
                                      api->manager->config->image_max_size);

        r = copy_caller_file(api->manager, fd, &copy, error);
        if (r < 0)
                return r;
        return add_image_reply(api, message, copy, name, &opts, error);
}

int bus_method_add_image(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return add_image(message, userdata, false, error);
}

int bus_method_add_image_with_options(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return add_image(message, userdata, true, error);
}

void bus_image_streams_stop(struct bus_api *api) {
        while (api->streams)
                image_stream_fail(api->streams, -ESHUTDOWN, "smpgwd is stopping.");
}

/* ---- org.smpgw.Image1 ---- */


/* One spelling per image: its id as shown, lower case. */
static void *image_lookup(struct manager *m, const char *name) {
        if (strlen(name) != IMAGE_ID_LEN || strspn(name, "0123456789abcdef") != IMAGE_ID_LEN)
                return NULL;
        return manager_find_image(m, name);
}

static void *const *image_list(struct manager *m, size_t *ret_n) {
        *ret_n = m->n_images;
        return (void *const *) m->images;
}

static const char *image_path_of(const void *object, char buf[static SMPGW_DBUS_PATH_MAX]) {
        return bus_image_path(((const struct image *) object)->id, buf);
}


BUS_DEFINE_GETTER(image_get_id, struct image, "s", o->id)
BUS_DEFINE_GETTER(image_get_name, struct image, "s", o->name ?: "")
BUS_DEFINE_GETTER(image_get_version, struct image, "s", o->version)
BUS_DEFINE_GETTER(image_get_size, struct image, "t", (uint64_t) o->file_size)
BUS_DEFINE_GETTER(image_get_image_size, struct image, "u", (uint32_t) o->image_size)
BUS_DEFINE_GETTER(image_get_sha256, struct image, "s", o->file_sha256)
BUS_DEFINE_GETTER(image_get_signed, struct image, "b", (int) o->signed_)
BUS_DEFINE_GETTER(image_get_key, struct image, "s", o->key ?: "")
BUS_DEFINE_GETTER(image_get_added, struct image, "t", (uint64_t) o->added_usec)
BUS_DEFINE_GETTER(image_get_in_use, struct image, "b", (int) image_in_use(o->manager, o))

static int image_get_boards(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct image *img = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "s");
        for (size_t i = 0; r >= 0 && i < img->n_boards; i++)
                r = sd_bus_message_append(reply, "s", img->boards[i]);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int image_method_set_boards(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(smp_strv_freep) char **boards = NULL;
        struct image *img = userdata;
        struct engine_error e;
        int r;

        r = sd_bus_message_read_strv(message, &boards);
        if (r < 0)
                return r;
        r = engine_image_set_boards(img->manager, img, (const char *const *) boards, strv_count(boards), &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

/* a{sv}: "hash" u and "elements" q, or empty for none (as Device1.Mesh is
 * empty for a device that is no mesh target): a hash of 0 is a hash. */
static int image_get_mesh_composition(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct image *img = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r >= 0 && img->has_mesh_composition)
                r = sd_bus_message_append(reply, "{sv}{sv}", "hash", "u", img->mesh_composition.hash, "elements", "q",
                                          img->mesh_composition.elements);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int image_method_set_mesh_composition(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct image *img = userdata;
        struct smp_mesh_composition comp;
        struct engine_error e;
        int r;

        r = sd_bus_message_read(message, "uq", &comp.hash, &comp.elements);
        if (r < 0)
                return r;
        r = engine_image_set_mesh_composition(img->manager, img, &comp, &e);
        if (r < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int image_method_clear_mesh_composition(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct image *img = userdata;
        struct engine_error e;

        if (engine_image_set_mesh_composition(img->manager, img, NULL, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static int image_method_delete(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        struct image *img = userdata;
        struct engine_error e;

        if (engine_image_delete(img->manager, img, &e) < 0)
                return bus_error_set_engine(error, &e);
        return sd_bus_reply_method_return(message, NULL);
}

static const sd_bus_vtable image_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", image_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", image_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", image_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", image_get_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ImageSize", "u", image_get_image_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Sha256", "s", image_get_sha256, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Signed", "b", image_get_signed, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Key", "s", image_get_key, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Added", "t", image_get_added, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("InUse", "b", image_get_in_use, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Boards", "as", image_get_boards, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetBoards", SD_BUS_ARGS("as", boards), SD_BUS_NO_RESULT, image_method_set_boards,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("MeshComposition", "a{sv}", image_get_mesh_composition, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetMeshComposition", SD_BUS_ARGS("u", hash, "q", elements), SD_BUS_NO_RESULT,
                                image_method_set_mesh_composition, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ClearMeshComposition", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                image_method_clear_mesh_composition, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, image_method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const struct bus_kind bus_image_kind = {
        .prefix = SMPGW_DBUS_IMAGE_PREFIX,
        .interface = SMPGW_DBUS_IMAGE_IFACE,
        .vtable = image_vtable,
        .lookup = image_lookup,
        .list = image_list,
        .path_of = image_path_of,
};
