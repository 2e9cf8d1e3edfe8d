/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /api/v1/images: the image store.  An upload is the raw image file as
 * the request body; it is streamed chunk by chunk into an unnamed
 * temporary file of the store (never held in memory), refused at the
 * headers when Content-Length is over [images] max_size and cut off when a
 * chunked body grows past it, then validated and stored by the image store.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "rest-internal.h"

#define REST_IMAGE_NAME_MAX 255u

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
        _cleanup_free_ char *reason = NULL;
        const char *name = rest_query(req, "name");
        struct image *img = NULL;
        bool created = false;
        json_t *o;
        int k;

        if (req->upload_fd < 0)
                return -EIO;
        if (req->upload_size == 0)
                return rest_reply_error(req, 400, "invalid_image",
                                        "The request body is empty: send the MCUboot image file as the body.");
        if (name) {
                if (strlen(name) > REST_IMAGE_NAME_MAX)
                        return rest_reply_error(req, 400, "invalid_field",
                                                "Query parameter 'name' is longer than %u bytes.", REST_IMAGE_NAME_MAX);
                for (const char *p = name; *p; p++)
                        if (iscntrl((unsigned char) *p))
                                return rest_reply_error(req, 400, "invalid_field",
                                                        "Query parameter 'name' must not contain control characters.");
        }
        if (lseek(req->upload_fd, 0, SEEK_SET) < 0)
                return -errno;

        k = image_store_add_fd(m, req->upload_fd, name, &img, &created, &reason);
        switch (k) {
        case 0:
                break;
        case -EBADMSG:
                return rest_reply_error(req, 400, "invalid_image", "The image was refused: %s.",
                                        reason ? reason : "not a valid MCUboot image");
        case -EKEYREJECTED:
                return rest_reply_error(req, 400, "signature_invalid", "The image was refused: %s.",
                                        reason ? reason : "no configured key verifies its signature");
        case -EFBIG:
                return rest_reply_error(req, 413, "payload_too_large",
                                        "The image is larger than the limit of %" PRIu64 " bytes ([images] max_size).",
                                        m->config->image_max_size);
        case -E2BIG:
                return rest_reply_error(req, 409, "too_many",
                                        "The image store is full ([images] max_count = %u); delete an image first.",
                                        m->config->max_images);
        default:
                /* The rest are I/O errors of the store, not the client's. */
                return rest_reply_error(req, 500, "internal", "Storing the image failed: %s",
                                        reason ? reason : strerror(abs(k)));
        }

        o = rest_json_image(m, img);
        if (o && json_object_set_new(o, "created", json_boolean(created)) < 0) {
                json_decref(o);
                o = NULL;
        }
        /* 201 either way: the contract is "201 with the image's id";
         * "created" tells whether this upload added it. */
        return rest_reply_json(req, 201, o);
}

int rest_images_list(struct rest_request *req) {
        struct manager *m = req->rest->manager;
        json_t *images = json_array();

        if (!images)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_images; i++)
                if (json_array_append_new(images, rest_json_image(m, m->images[i])) < 0) {
                        json_decref(images);
                        return -ENOMEM;
                }
        return rest_reply_json(req, 200, json_pack("{s:o}", "images", images));
}

static int find_image_by_path(struct rest_request *req, struct image **ret) {
        /* Hashes are shown in lower case; accept them typed in upper case. */
        for (char *p = req->path_id; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return rest_find_image(req, req->path_id, ret);
}

int rest_image_get(struct rest_request *req) {
        struct image *img;
        int k;

        k = find_image_by_path(req, &img);
        if (k < 0)
                return k;
        return rest_reply_json(req, 200, rest_json_image(req->rest->manager, img));
}

int rest_image_delete(struct rest_request *req) {
        struct image *img;
        char id[sizeof(img->id)];
        int k;

        k = find_image_by_path(req, &img);
        if (k < 0)
                return k;
        memcpy(id, img->id, sizeof(id));
        k = image_store_remove(req->rest->manager, img);
        /* img is freed on success. */
        if (k == -EBUSY)
                return rest_reply_error(req, 409, "busy",
                                        "Image %s is used by an unfinished job; cancel the job first.", id);
        if (k < 0)
                return rest_reply_error(req, 500, "internal", "Deleting image %s failed: %s.", id, strerror(-k));
        return rest_reply_no_content(req);
}
