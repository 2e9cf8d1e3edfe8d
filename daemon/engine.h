/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine: what smpgwd can be asked to do, once, for every front end
 * (REST, D-Bus, and the rollout and hawkBit layers to come).  A front
 * end only translates: it reads its request into these calls, and turns
 * their answer, or their refusal, into its own protocol.
 *
 * Refusals are a negative errno and one sentence (struct engine_error),
 * which the front ends pass on unchanged; the errno picks the protocol's
 * error through one table per front end (rest.c: errno → HTTP status and
 * code; bus.c: errno → D-Bus error name).  An errno means the same in
 * every call:
 *
 *   -EINVAL           a value of the request is wrong (field says which)
 *   -ENOENT           nothing by that name (device, image, job)
 *   -ENOTUNIQ         an image prefix that fits more than one image
 *   -EBUSY            a job or probe runs on it, or an unfinished job uses it
 *   -EALREADY         the job is finished already
 *   -E2BIG            a configured count is reached ([devices] / [images] max_count)
 *   -EPROTONOSUPPORT  no usable transport for a connection string's scheme
 *   -ENOTCONN         discovery is off
 *   -EBADMSG, -EKEYREJECTED, -EFBIG   an image refused: invalid, unsigned, too large
 *   -ENOEXEC          the image is not built for the device's board (push without force)
 *   anything else     the gateway's own trouble (I/O, memory)
 *
 * Every call checks everything before it changes anything: a refused
 * call leaves the model as it was.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "smpgwd-limits.h"

struct manager;
struct device;
struct image;
struct job;
struct smp_mesh_composition;

#define ENGINE_MESSAGE_MAX 512

struct engine_error {
        int error;                  /* negative errno; 0 when nothing was refused */
        const char *field;          /* the request's field it is about ("devices", "mode"), or NULL */
        ssize_t index;              /* the item of a list field, -1 when none */
        /* The sentence for the client: complete, ends with '.', names the
         * field (quoted) and the item where there is one. */
        char message[ENGINE_MESSAGE_MAX];
        /* The sentence of the part that refused a value, as it said it
         * (libsmpgw's on a connection string), "" when none: a front end
         * whose contract quotes it in its own frame takes it from here. */
        char reason[ENGINE_MESSAGE_MAX];
};

/* ---- devices ---- */

/* A device as clients name it: its decimal id, or its connection string
 * written any way that has the device's canonical form
 * (doc/connection-strings.md).  NULL when there is none. */
struct device *engine_device_lookup(struct manager *m, const char *spec);
/* The same, refusing with -ENOENT. */
int engine_device_find(struct manager *m, const char *spec, struct device **ret, struct engine_error *e);
/* Adds a device by its connection string and probes it.  A device known
 * already (in any spelling) is no error: *ret is that one and
 * *ret_created false. */
int engine_device_add(struct manager *m, const char *conn, const char *source, struct device **ret,
                      bool *ret_created, struct engine_error *e);
/* Deletes the device and its history.  On success d is gone (its
 * DEVICE_REMOVED event still to come). */
int engine_device_forget(struct manager *m, struct device *d, struct engine_error *e);
/* NULL or "" removes the name. */
int engine_device_rename(struct manager *m, struct device *d, const char *name, struct engine_error *e);
/* The fields a user sets on a device, changed together by one request
 * (PATCH /api/v1/devices/{id}); a field not set stays as it is. */
struct engine_device_patch {
        bool set_name;
        const char *name; /* NULL or "": none */
        bool set_role;
        const char *role; /* NULL or "": none */
        bool set_direct;
        struct device *direct; /* a mesh target's direct device; NULL: none */
};
/* All or nothing: every field is checked against the device as it is
 * (the checks and sentences of engine_device_rename(),
 * engine_device_set_role() and engine_mesh_target_set_direct()), and only
 * when none is refused is each set, recorded and announced.  Past the
 * checks only the storage can fail (-ENOMEM, a database error), and then
 * the fields set before the failing one stay set. */
int engine_device_patch(struct manager *m, struct device *d, const struct engine_device_patch *p,
                        struct engine_error *e);
/* Replaces the device's labels (doc/rest-api.md: [a-z0-9][a-z0-9._-]{0,31},
 * at most DEVICE_LABELS_MAX; duplicates count once). */
int engine_device_set_labels(struct manager *m, struct device *d, const char *const *labels, size_t n,
                             struct engine_error *e);
int engine_device_probe(struct manager *m, struct device *d, struct engine_error *e);
/* A device's history, newest first, at most limit rows, each handed to
 * fn (db.h); a failure to read it is the gateway's (-EIO). */
struct db_history_row;
int engine_device_history(struct manager *m, struct device *d, unsigned limit,
                          int (*fn)(const struct db_history_row *row, void *userdata), void *userdata,
                          struct engine_error *e);
/* A discovery round now (one running already counts as started).
 * -ENOTCONN: discovery is off. */
int engine_scan(struct manager *m, struct engine_error *e);

/* ---- images ---- */

/* An image by its id or a unique prefix of it; field names the request's
 * field in the refusal ("image", "id"). */
int engine_image_find(struct manager *m, const char *field, const char *ref, struct image **ret,
                      struct engine_error *e);
/* An image's name: at most IMAGE_NAME_MAX bytes, no control characters
 * (a front end checks it before it reads the image; engine_image_add()
 * checks it again). */
int engine_image_name_check(const char *name, struct engine_error *e);
/* Validates and stores the image read from fd (image_store_add_fd()).
 * name may be NULL; *ret_created is false when the same image was
 * stored already. */
int engine_image_add(struct manager *m, int fd, const char *name, struct image **ret, bool *ret_created,
                     struct engine_error *e);
/* engine_image_add() that also declares the boards the image is built
 * for (image-boards.h) when set_boards: the list is checked before the
 * image is read, and replaces the one a stored image had.  Refusals of
 * the list: -EINVAL, field "boards". */
int engine_image_add_with_boards(struct manager *m, int fd, const char *name, bool set_boards,
                                 const char *const *boards, size_t n_boards, struct image **ret, bool *ret_created,
                                 struct engine_error *e);
/* The list alone, as engine_image_add_with_boards() checks it. */
int engine_image_boards_check(const char *const *boards, size_t n, struct engine_error *e);
/* Replaces the boards an image declares; none: any board. */
int engine_image_set_boards(struct manager *m, struct image *img, const char *const *boards, size_t n,
                            struct engine_error *e);
/* The mesh composition of the firmware in an image (image.h), as a client
 * gives it: hash 0..UINT32_MAX, elements 1..UINT16_MAX, else -EINVAL,
 * field "mesh_composition". */
int engine_image_mesh_composition_check(int64_t hash, int64_t elements, struct engine_error *e);
/* Declares it (comp) or clears it (NULL); a distribution of the image
 * sends it to the targets in the firmware metadata (doc/mesh-dfu.md). */
int engine_image_set_mesh_composition(struct manager *m, struct image *img, const struct smp_mesh_composition *comp,
                                      struct engine_error *e);
/* On success img is gone (its IMAGE_REMOVED event still to come). */
int engine_image_delete(struct manager *m, struct image *img, struct engine_error *e);

/* ---- jobs ---- */

struct engine_push {
        const char *image;             /* its id or a unique prefix */
        const char *const *devices;    /* specs, as engine_device_lookup() takes them */
        size_t n_devices;
        /* The devices came as a list the client wrote (REST's "devices",
         * D-Bus Manager1.Push()'s): refusals say which item. */
        bool devices_listed;
        const char *mode;              /* NULL: [jobs] mode */
        /* Push to a device whose reported board is none of those the
         * image declares (else refused with -ENOEXEC). */
        bool force;
        bool has_attempts;
        int64_t attempts;              /* with has_attempts; else [jobs] attempts */
        /* For the rollout layer (not taken from REST or D-Bus yet): */
        bool stage_only;          /* stop in staged until engine_job_activate() */
        uint64_t rollout_id;      /* 0: none; else the reboot gate is asked */
        int64_t priority;         /* slots go to lower values first; FIFO among equals */
        uint64_t not_before_usec; /* CLOCK_REALTIME µs; 0: now */
};

/* Pushes an image to devices, one job per device, all or none: the
 * image, the options and every device (known, named once, without an
 * unfinished job, of a board the image is built for unless force or the
 * device does not tell its board, at most PUSH_DEVICES_MAX of them) are
 * checked before
 * the first job is created.  *ret_jobs (free() the array, not the jobs)
 * holds the jobs in the order of req->devices. */
int engine_push(struct manager *m, const struct engine_push *req, struct job ***ret_jobs, struct engine_error *e);
/* engine_push()'s check of the options alone (mode, attempts): what a
 * fuzzer of the REST and D-Bus readers can reach without a device. */
int engine_push_check_options(struct manager *m, const struct engine_push *req, struct engine_error *e);
/* A job by its decimal id. */
int engine_job_find(struct manager *m, const char *spec, struct job **ret, struct engine_error *e);
int engine_job_cancel(struct manager *m, struct job *j, struct engine_error *e);
/* A staged job goes on: test/confirm, reset, verify.  -EINVAL if not
 * staged. */
int engine_job_activate(struct manager *m, struct job *j, struct engine_error *e);
/* The rollout layer's reboot gate: asked before a job of a rollout
 * (rollout_id != 0) sends its reset; false: it waits, staged.  One gate;
 * NULL removes it. */
typedef bool (*engine_reboot_gate_fn)(struct manager *m, const struct job *j, void *userdata);
void engine_set_reboot_gate(struct manager *m, engine_reboot_gate_fn fn, void *userdata);
/* The gate may say yes now: the jobs it held ask again. */
void engine_reboot_gate_changed(struct manager *m);

/* ---- queries ---- */

/* Filters are strings as clients write them; NULL: no filter.  A page is
 * offset and limit (limit 0: everything). */
struct engine_device_query {
        const char *state;             /* a device state */
        const char *transport;         /* a scheme */
        const char *name;              /* a part of the name, any case */
        const char *image;             /* a hash or a prefix: a device with it in a slot */
        const char *label;             /* a label the device carries */
        uint64_t offset;
        unsigned limit;
};

struct engine_job_query {
        const char *state;             /* a job state */
        const char *device;            /* a device id (also of a forgotten device) or connection string */
        const char *image;             /* a hash or a prefix */
        uint64_t offset;
        unsigned limit;
};

/* The devices that match, in the order of their ids; *ret (free() the
 * array) holds the page, *ret_total counts every match. */
int engine_devices_query(struct manager *m, const struct engine_device_query *q, struct device ***ret,
                         size_t *ret_n, uint64_t *ret_total, struct engine_error *e);
/* The jobs that match, newest first. */
int engine_jobs_query(struct manager *m, const struct engine_job_query *q, struct job ***ret, size_t *ret_n,
                      uint64_t *ret_total, struct engine_error *e);
