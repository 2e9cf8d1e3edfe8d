/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON forms of devices, images and jobs (doc/openapi.yaml), shared by
 * the REST handlers and the event stream so both always agree.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rest-internal.h"

json_t *rest_json_time(uint64_t realtime_usec) {
        char buf[64];
        struct tm tm;
        time_t sec;

        if (realtime_usec == 0)
                return json_null();
        sec = (time_t) (realtime_usec / 1000000u);
        if (!gmtime_r(&sec, &tm))
                return json_null();
        if (strftime(buf, sizeof(buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        snprintf(buf + strlen(buf), 8, ".%03uZ", (unsigned) (realtime_usec / 1000u % 1000u));
        return json_string(buf);
}

json_t *rest_json_string_or_null(const char *s) {
        /* Device-reported strings (OS info, names) are not promised to be
         * UTF-8; json_string() refuses those, so show them as null rather
         * than fail the whole object. */
        json_t *v;

        if (!s)
                return json_null();
        v = json_string(s);
        return v ? v : json_null();
}

static json_t *json_slot(const struct smp_update_slot *s) {
        char hash[2 * sizeof(s->hash) + 1];

        hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hash);
        return json_pack("{s:I, s:I, s:o, s:s, s:b, s:b, s:b, s:b, s:b}",
                         "image", (json_int_t) s->image,
                         "slot", (json_int_t) s->slot,
                         "version", rest_json_string_or_null(s->version),
                         "hash", hash,
                         "active", s->active,
                         "confirmed", s->confirmed,
                         "pending", s->pending,
                         "bootable", s->bootable,
                         "permanent", s->permanent);
}

json_t *rest_json_device(struct manager *m, const struct device *d) {
        const struct job *unfinished = device_unfinished_job(m, d);
        json_t *o, *images;

        images = json_array();
        if (!images)
                return NULL;
        for (size_t i = 0; i < d->slots.n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                if (!d->slots.slots[i].present)
                        continue;
                if (json_array_append_new(images, json_slot(&d->slots.slots[i])) < 0) {
                        json_decref(images);
                        return NULL;
                }
        }

        o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
                      " s:o, s:o, s:o}",
                      "id", (json_int_t) d->id,
                      "conn", rest_json_string_or_null(d->conn),
                      "transport", rest_json_string_or_null(d->transport),
                      "address", rest_json_string_or_null(d->address),
                      "address_type", rest_json_string_or_null(d->address_type),
                      "adapter", rest_json_string_or_null(d->adapter),
                      "name", rest_json_string_or_null(d->name),
                      "state", rest_json_string_or_null(device_state_to_string(d->state)),
                      "source", rest_json_string_or_null(d->source),
                      "rssi", d->has_rssi ? json_integer(d->rssi) : json_null(),
                      "first_seen", rest_json_time(d->first_seen_usec),
                      "last_seen", rest_json_time(d->last_seen_usec),
                      "last_probe", rest_json_time(d->last_probe_usec),
                      "params", d->has_params ? json_pack("{s:I, s:I}", "buf_size", (json_int_t) d->buf_size,
                                                          "buf_count", (json_int_t) d->buf_count)
                                              : json_null(),
                      "os_info", rest_json_string_or_null(d->os_info),
                      "bootloader", rest_json_string_or_null(d->bootloader),
                      "smp_version", d->smp_version ? json_integer(d->smp_version) : json_null(),
                      "last_error", rest_json_string_or_null(d->last_error),
                      "job", unfinished ? json_integer((json_int_t) unfinished->id) : json_null(),
                      "images", images);
        return o;
}

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

json_t *rest_json_job(struct manager *m, const struct job *j) {
        const struct device *d = manager_find_device(m, j->device_id);
        double progress = job_progress(j), rate = job_rate(j);

        return json_pack("{s:I, s:I, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:f, s:f, s:o,"
                         " s:o, s:o, s:o, s:o, s:o}",
                         "id", (json_int_t) j->id,
                         "device", (json_int_t) j->device_id,
                         "conn", d ? rest_json_string_or_null(d->conn) : json_null(),
                         "image", j->image_id,
                         "rollout", j->rollout_id ? json_integer((json_int_t) j->rollout_id) : json_null(),
                         "mode", rest_json_string_or_null(smp_update_mode_to_string(j->mode)),
                         "state", rest_json_string_or_null(job_state_to_string(j->state)),
                         "step", j->has_step ? rest_json_string_or_null(smp_update_step_to_string(j->step))
                                             : json_null(),
                         "outcome", j->has_outcome
                                            ? rest_json_string_or_null(smp_update_outcome_to_string(j->outcome))
                                            : json_null(),
                         "attempts", (json_int_t) j->attempts,
                         "max_attempts", (json_int_t) j->max_attempts,
                         "bytes_sent", (json_int_t) j->bytes_sent,
                         "bytes_total", (json_int_t) j->bytes_total,
                         "progress", progress,
                         "rate", rate,
                         "error", rest_json_string_or_null(j->error),
                         "created", rest_json_time(j->created_usec),
                         "started", rest_json_time(j->started_usec),
                         "finished", rest_json_time(j->finished_usec),
                         "next_attempt", rest_json_time(j->next_attempt_usec),
                         "updated", rest_json_time(j->updated_usec));
}

int rest_json_check_fields(struct rest_request *req, json_t *object, const char *const *known) {
        const char *key;
        json_t *value;

        json_object_foreach(object, key, value) {
                bool found = false;
                for (const char *const *k = known; *k; k++)
                        if (streq(key, *k)) {
                                found = true;
                                break;
                        }
                if (!found) {
                        (void) rest_reply_error(req, 400, "invalid_field", "Unknown field '%s'.", key);
                        return -EINVAL;
                }
        }
        return 0;
}
