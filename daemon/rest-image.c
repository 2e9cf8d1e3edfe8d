/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/images: the image store.  An upload is the raw image file as
 * the request body; it is streamed chunk by chunk into an unnamed
 * temporary file of the store (never held in memory), refused at the
 * headers when Content-Length is over [images] max_size or ?boards= is
 * not a list of boards, cut off when a chunked body grows past the size,
 * then validated and stored by the image store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "engine.h"
#include "log.h"
#include "rest-internal.h"

static json_t *boards_json(const struct image *img) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < img->n_boards; i++)
                if (json_array_append_new(a, json_string(img->boards[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/* {"hash": u32, "elements": u16}, or null for none. */
static json_t *mesh_composition_json(const struct image *img) {
        if (!img->has_mesh_composition)
                return json_null();
        return json_pack("{s:I, s:I}", "hash", (json_int_t) img->mesh_composition.hash, "elements",
                         (json_int_t) img->mesh_composition.elements);
}

/* The JSON form, as REST and the event stream show it. */
json_t *rest_json_image(struct manager *m, const struct image *img) {
        return json_pack("{s:s, s:o, s:o, s:I, s:I, s:s, s:b, s:o, s:o, s:b, s:o, s:o}", "id", img->id, "name",
                         rest_json_string_or_null(img->name), "version", rest_json_string_or_null(img->version), "size",
                         (json_int_t) img->file_size, "image_size", (json_int_t) img->image_size, "sha256",
                         img->file_sha256, "signed", img->signed_, "key", rest_json_string_or_null(img->key), "added",
                         rest_json_time(img->added_usec), "in_use", image_in_use(m, img), "boards", boards_json(img),
                         "mesh_composition", mesh_composition_json(img));
}

/* ?boards=a,b: the names split at commas (no board name has one); ""
 * is the empty list (any board).  *ret_copy holds the names. */
static int split_boards(const char *text, char **ret_copy, const char ***ret, size_t *ret_n) {
        size_t n = 0, max = 1;
        const char **v;
        char *copy;

        for (const char *p = text; *p; p++)
                max += *p == ',';
        copy = strdup(text);
        v = calloc(max + 1, sizeof(char *));
        if (!copy || !v) {
                free(copy);
                free(v);
                return -ENOMEM;
        }
        /* An empty name between commas is kept, so the engine refuses it. */
        if (*copy) {
                char *p = copy;
                for (;;) {
                        char *comma = strchr(p, ',');
                        v[n++] = p;
                        if (!comma)
                                break;
                        *comma = '\0';
                        p = comma + 1;
                }
        }
        *ret_copy = copy;
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ?boards= is known with the request line: a bad list is refused before
 * a byte of the body is read (no 100 Continue, no megabytes sent to be
 * thrown away), with the sentence the engine gives after the upload. */
static int upload_check_boards(struct rest_request *req) {
        const char *text = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "boards");
        _cleanup_free_ const char **boards = NULL;
        _cleanup_free_ char *copy = NULL;
        struct engine_error e;
        size_t n = 0;
        int k;

        if (!text)
                return 0;
        k = split_boards(text, &copy, &boards, &n);
        if (k < 0) {
                (void) rest_reply_errno(req, k, "Out of memory.");
                return k;
        }
        k = engine_image_boards_check(boards, n, &e);
        if (k < 0) {
                (void) rest_reply_engine_error(req, &e);
                return k;
        }
        return 0;
}

int rest_image_upload_begin(struct rest_request *req) {
        int fd = -1, k;

        k = upload_check_boards(req);
        if (k < 0)
                return k;
        k = image_store_open_tmp(req->rest->manager, &fd);
        if (k < 0) {
                log_error_errno(k, "REST: cannot open a temporary file for an image upload: %m");
                return rest_reply_error(req, 500, "internal", "Cannot store the upload: %s.", strerror(abs(k)));
        }
        req->upload_fd = fd;
        req->upload_size = 0;
        return 0;
}

int rest_image_upload_chunk(struct rest_request *req, const char *data, size_t size) {
        uint64_t limit = req->rest->manager->config->image_max_size;

        if (req->upload_size + size > limit) {
                /* Chunked uploads carry no Content-Length to refuse early. */
                req->body_too_large = true;
                closep(&req->upload_fd);
                req->upload_fd = -1;
                return 0;
        }
        while (size > 0) {
                ssize_t n = write(req->upload_fd, data, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        req->upload_error = -errno;
                        log_error_errno(req->upload_error, "REST: writing an image upload failed: %m");
                        closep(&req->upload_fd);
                        req->upload_fd = -1;
                        return 0;
                }
                data += n;
                size -= (size_t) n;
                req->upload_size += (uint64_t) n;
        }
        return 0;
}

int rest_image_upload(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ const char **boards = NULL;
        const char *boards_text;
        size_t n_boards = 0;
        struct engine_error e;
        struct image *img;
        bool created;
        json_t *o;
        int k;

        if (req->upload_fd < 0)
                return -EIO;
        if (req->upload_size == 0)
                return rest_reply_error(req, 400, "invalid_image",
                                        "The request body is empty: send the MCUboot image file as the body.");
        if (lseek(req->upload_fd, 0, SEEK_SET) < 0)
                return -errno;
        /* Unlike other parameters, "?boards=" is a value: no board
         * declared, any board. */
        boards_text = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "boards");
        if (boards_text) {
                k = split_boards(boards_text, &copy, &boards, &n_boards);
                if (k < 0)
                        return rest_reply_errno(req, k, "Out of memory.");
        }
        k = engine_image_add_with_boards(m, req->upload_fd, rest_query(req, "name"), boards_text != NULL, boards,
                                         n_boards, &img, &created, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);

        o = rest_json_image(m, img);
        if (o && json_object_set_new(o, "created", json_boolean(created)) < 0) {
                json_decref(o);
                o = NULL;
        }
        /* 201 either way: the contract is "201 with the image's id";
         * "created" tells whether this upload added it. */
        return rest_reply_json(req, 201, o);
}

static json_t *image_form(struct manager *m, const void *image) {
        return rest_json_image(m, image);
}

int rest_images_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        json_t *images = rest_json_array(m, (void *const *) m->images, m->n_images, image_form);

        if (!images)
                return -ENOMEM;
        return rest_reply_json(req, 200, json_pack("{s:o}", "images", images));
}

int rest_image_get(struct rest_request *req) {
        struct image *img;
        int k;

        k = rest_find_image(req, &img);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_image(req->rest->manager, img));
}

int rest_image_delete(struct rest_request *req) {
        struct engine_error e;
        struct image *img;
        int k;

        k = rest_find_image(req, &img);
        if (k < 0)
                return k;
        k = engine_image_delete(req->rest->manager, img, &e);
        if (k < 0)
                return rest_reply_engine_error(req, &e);
        return rest_reply_no_content(req);
}

#define MESH_COMPOSITION_FORM "{\"hash\": 0..4294967295, \"elements\": 1..65535}, or null to clear it"

/* "mesh_composition" as a client gives it: the object or null (none). */
static int patch_mesh_composition(struct rest_request *req, json_t *v, bool *ret_clear,
                                  struct smp_mesh_composition *ret) {
        static const char *const keys[] = { "hash", "elements", NULL };
        struct engine_error e;
        json_t *hash, *elements;
        const char *key;
        json_t *item;

        if (json_is_null(v)) {
                *ret_clear = true;
                return 0;
        }
        if (!json_is_object(v))
                return rest_reply_error(req, 400, "invalid_field",
                                        "Field 'mesh_composition' must be " MESH_COMPOSITION_FORM ".");
        json_object_foreach(v, key, item) {
                bool known = false;
                for (size_t i = 0; keys[i]; i++)
                        known |= streq(key, keys[i]);
                if (!known)
                        return rest_reply_error(
                                req, 400, "invalid_field",
                                "Field 'mesh_composition' has an unknown key '%.64s'; it is " MESH_COMPOSITION_FORM ".",
                                key);
        }
        hash = json_object_get(v, "hash");
        elements = json_object_get(v, "elements");
        if (!json_is_integer(hash) || !json_is_integer(elements))
                return rest_reply_error(
                        req, 400, "invalid_field",
                        "Field 'mesh_composition' needs integers 'hash' and 'elements': " MESH_COMPOSITION_FORM ".");
        if (engine_image_mesh_composition_check(json_integer_value(hash), json_integer_value(elements), &e) < 0)
                return rest_reply_engine_error(req, &e);
        *ret_clear = false;
        *ret = (struct smp_mesh_composition) {
                .hash = (uint32_t) json_integer_value(hash),
                .elements = (uint16_t) json_integer_value(elements),
        };
        return 0;
}

/* PATCH: what may change of a stored image, the boards it is built for
 * and its mesh composition; fields left out stay as they are.  Every
 * field given is checked before anything changes. */
int rest_image_patch(struct rest_request *req) {
        static const char *const fields[] = { "boards", "mesh_composition", NULL };
        _cleanup_free_ const char **boards = NULL;
        struct smp_mesh_composition comp = { 0 };
        bool clear_comp = false;
        struct engine_error e;
        struct image *img;
        json_t *v, *mc, *item;
        size_t i;
        int k;

        k = rest_find_image(req, &img);
        if (k < 0)
                return k;
        k = rest_json_check_fields(req, req->json, fields);
        if (k < 0)
                return k;
        mc = json_object_get(req->json, "mesh_composition");
        if (mc) {
                k = patch_mesh_composition(req, mc, &clear_comp, &comp);
                if (k != 0 || req->replied)
                        return k;
        }
        v = json_object_get(req->json, "boards");
        if (v) {
                if (!json_is_array(v))
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Field 'boards' must be a list of board names such as [\"nrf52840dk\"] "
                                                "([] for any board).");
                boards = calloc(json_array_size(v) + 1, sizeof(char *));
                if (!boards)
                        return rest_reply_errno(req, -ENOMEM, "Out of memory.");
                json_array_foreach(v, i, item) {
                        if (!json_is_string(item))
                                return rest_reply_error(req, 400, "invalid_field", "'boards' item %zu is not a string.",
                                                        i);
                        boards[i] = json_string_value(item);
                }
                k = engine_image_boards_check(boards, json_array_size(v), &e);
                if (k < 0)
                        return rest_reply_engine_error(req, &e);
                k = engine_image_set_boards(req->rest->manager, img, boards, json_array_size(v), &e);
                if (k < 0)
                        return rest_reply_engine_error(req, &e);
        }
        if (mc) {
                k = engine_image_set_mesh_composition(req->rest->manager, img, clear_comp ? NULL : &comp, &e);
                if (k < 0)
                        return rest_reply_engine_error(req, &e);
        }
        return rest_reply_json(req, 200, rest_json_image(req->rest->manager, img));
}
