/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/images: the image store.  An upload is the raw image file as
 * the request body; it is streamed chunk by chunk into an unnamed
 * temporary file of the store (never held in memory), refused at the
 * headers when Content-Length is over [images] max_size and cut off when a
 * chunked body grows past it, then validated and stored by the image store.
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

/* The JSON form, as REST and the event stream show it. */
json_t *rest_json_image(struct manager *m, const struct image *img) {
        return json_pack("{s:s, s:o, s:o, s:I, s:I, s:s, s:b, s:o, s:o, s:b}",
                         "id", img->id,
                         "name", rest_json_string_or_null(img->name),
                         "version", rest_json_string_or_null(img->version),
                         "size", (json_int_t) img->file_size,
                         "image_size", (json_int_t) img->image_size,
                         "sha256", img->file_sha256,
                         "signed", img->signed_,
                         "key", rest_json_string_or_null(img->key),
                         "added", rest_json_time(img->added_usec),
                         "in_use", image_in_use(m, img));
}

int rest_image_upload_begin(struct rest_request *req) {
        int fd = -1, k;

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
        k = engine_image_add(m, req->upload_fd, rest_query(req, "name"), &img, &created, &e);
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
