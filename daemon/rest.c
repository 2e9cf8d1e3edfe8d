/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The REST API's server: libmicrohttpd in external-polling epoll mode on
 * the manager's sd-event loop (so every handler runs on the loop thread
 * and touches the model without locks), routing, bearer tokens, request
 * bodies, replies and the errno → HTTP table.  The resources are in
 * rest-device.c, rest-image.c, rest-job.c, rest-events.c and
 * rest-metrics.c; the contract is doc/openapi.yaml.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <nettle/memops.h>

#include "conf.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "rest-internal.h"
#include "rest.h"
#include "sha-digest.h"
#include "smpgw/smp-parse.h"

/* Per connection: bounds header sizes and upload chunks.  MHD's default is
 * 32 KiB; twice that lets an image upload arrive in bigger pieces. */
#define REST_CONNECTION_MEMORY_LIMIT (64u * 1024u)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct rest *, rest_free);

/* ---- replies ---- */

static int rest_queue(struct rest_request *req, unsigned status, struct MHD_Response *response) {
        int r = 0;

        if (!response) {
                /* Nothing can be said to the client: close the connection. */
                req->queue_failed = true;
                return -ENOMEM;
        }
        if (req->replied) {
                /* A handler bug: two replies.  The first one stands. */
                log_error("REST: second reply (%u) to one request ignored", status);
                MHD_destroy_response(response);
                return -EALREADY;
        }
        req->replied = true;
        req->status = status;
        rest_conn_replying(req->connection);
        if (status >= 400)
                req->rest->manager->stats.rest_errors++;
        if (MHD_queue_response(req->connection, status, response) != MHD_YES) {
                req->queue_failed = true;
                r = -EIO;
        }
        MHD_destroy_response(response);
        return r;
}

int rest_reply_response(struct rest_request *req, unsigned status, struct MHD_Response *response) {
        return rest_queue(req, status, response);
}

int rest_reply_text(struct rest_request *req, unsigned status, const char *content_type, char *text, size_t len) {
        struct MHD_Response *response;

        response = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!response) {
                free(text);
                return rest_queue(req, status, NULL);
        }
        if (content_type)
                (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        return rest_queue(req, status, response);
}

static char *json_dumps_line(json_t *body) {
        /* A trailing newline keeps curl output and shell pipelines tidy. */
        char *text = json_dumps(body, REST_JSON_DUMP_FLAGS | JSON_ENCODE_ANY);
        size_t len;
        char *line;

        if (!text)
                return NULL;
        len = strlen(text);
        line = realloc(text, len + 2);
        if (!line) {
                free(text);
                return NULL;
        }
        line[len] = '\n';
        line[len + 1] = '\0';
        return line;
}

static int rest_reply_error_va(struct rest_request *req, unsigned status, const char *code, const char *header,
                               const char *header_value, const char *fmt, va_list ap) _printf_(6, 0);

int rest_reply_json(struct rest_request *req, unsigned status, json_t *body) {
        char *text;

        if (!body)
                return rest_reply_error(req, 500, "internal", "The reply could not be built (out of memory).");
        text = json_dumps_line(body);
        json_decref(body);
        if (!text)
                return rest_reply_error(req, 500, "internal", "The reply could not be built (out of memory).");
        return rest_reply_text(req, status, "application/json", text, strlen(text));
}

static int rest_reply_error_va(struct rest_request *req, unsigned status, const char *code, const char *header,
                               const char *header_value, const char *fmt, va_list ap) {
        struct MHD_Response *response;
        char message[512];
        json_t *body;
        char *text;

        vsnprintf(message, sizeof(message), fmt, ap);
        body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
        if (!body) {
                /* The message quoted something that is not UTF-8 (a
                 * client's bytes): keep its ASCII. */
                for (char *p = message; *p; p++)
                        if ((unsigned char) *p >= 0x80)
                                *p = '?';
                body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
        }
        text = body ? json_dumps_line(body) : NULL;
        json_decref(body);
        if (!text)
                return rest_queue(req, status, NULL);

        log_debug("REST %s: %u %s: %s", req->method, status, code, message);
        response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!response) {
                free(text);
                return rest_queue(req, status, NULL);
        }
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (header)
                (void) MHD_add_response_header(response, header, header_value);
        return rest_queue(req, status, response);
}

int rest_reply_error(struct rest_request *req, unsigned status, const char *code, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = rest_reply_error_va(req, status, code, NULL, NULL, fmt, ap);
        va_end(ap);
        return r;
}

static int rest_reply_error_with_header(struct rest_request *req, unsigned status, const char *code,
                                        const char *header, const char *header_value, const char *fmt, ...)
        _printf_(6, 7);

static int rest_reply_error_with_header(struct rest_request *req, unsigned status, const char *code,
                                        const char *header, const char *header_value, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = rest_reply_error_va(req, status, code, header, header_value, fmt, ap);
        va_end(ap);
        return r;
}

/* The one table from errno to HTTP (style rule 2).  Handlers catch the
 * errors whose meaning depends on the call (-EEXIST of an add, -EALREADY
 * of a cancel) before they fall through to here. */
static const struct {
        int error;
        unsigned status;
        const char *code;
} rest_errno_table[] = {
        { ENOENT, 404, "not_found" },
        { EINVAL, 400, "invalid_field" },          /* the engine's: a value of the request */
        { EPROTONOSUPPORT, 400, "invalid_field" }, /* a connection string's scheme */
        { EMEDIUMTYPE, 400, "invalid_field" },     /* a device of the wrong kind (mesh) */
        { EBUSY, 409, "busy" },
        { EEXIST, 409, "conflict" },
        { EALREADY, 409, "conflict" },
        { E2BIG, 409, "too_many" },
        { EFBIG, 413, "payload_too_large" },
        { EMSGSIZE, 413, "payload_too_large" },
        { EBADMSG, 400, "invalid_image" },
        { EKEYREJECTED, 400, "signature_invalid" },
        { ENOTUNIQ, 409, "ambiguous" },
        { ENOEXEC, 409, "incompatible_board" }, /* a push of an image built for other boards */
};

int rest_reply_errno(struct rest_request *req, int error, const char *fmt, ...) {
        unsigned status = 500;
        const char *code = "internal";
        va_list ap;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(rest_errno_table); i++)
                if (rest_errno_table[i].error == abs(error)) {
                        status = rest_errno_table[i].status;
                        code = rest_errno_table[i].code;
                        break;
                }
        va_start(ap, fmt);
        r = rest_reply_error_va(req, status, code, NULL, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int rest_reply_engine_error(struct rest_request *req, const struct engine_error *e) {
        /* The one frame this API has always given a sentence of
         * libsmpgw's: a connection string's refusal names the field. */
        if (e->error == -EINVAL && streq_ptr(e->field, "conn") && e->reason[0])
                return rest_reply_errno(req, e->error, "Field 'conn': %s.", e->reason);
        return rest_reply_errno(req, e->error, "%s", e->message);
}

int rest_reply_no_content(struct rest_request *req) {
        return rest_queue(req, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* ---- query parameters and lookups ---- */

const char *rest_query(struct rest_request *req, const char *name) {
        const char *v = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
        /* ?state= from an empty form field means "no filter". */
        return v && *v ? v : NULL;
}

static int parse_decimal(const char *s, uint64_t *ret) {
        return smp_parse_uint(s, 0, UINT64_MAX, ret);
}

int rest_query_uint(struct rest_request *req, const char *name, uint64_t default_value, uint64_t min,
                    uint64_t max, uint64_t *ret) {
        const char *s = rest_query(req, name);
        uint64_t v;

        if (!s) {
                *ret = default_value;
                return 0;
        }
        if (parse_decimal(s, &v) < 0 || v < min || v > max) {
                (void) rest_reply_error(req, 400, "invalid_field",
                                        "Query parameter '%s' must be an integer from %" PRIu64 " to %" PRIu64 ".",
                                        name, min, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

unsigned rest_page_max(const struct rest *r) {
        unsigned page_max = r->manager->config->rest_page_max;
        return page_max ? page_max : PAGE_MAX_DEFAULT;
}

int rest_query_page(struct rest_request *req, unsigned *ret_limit, uint64_t *ret_offset) {
        unsigned page_max = rest_page_max(req->rest);
        uint64_t limit, offset;
        int r;

        r = rest_query_uint(req, "limit", MIN(PAGE_LIMIT_DEFAULT, page_max), 1, page_max, &limit);
        if (r < 0)
                return r;
        r = rest_query_uint(req, "offset", 0, 0, INT64_MAX, &offset);
        if (r < 0)
                return r;
        *ret_limit = (unsigned) limit;
        *ret_offset = offset;
        return 0;
}

/* Replies the refusal, returns its errno (the handler convention). */
static int rest_refuse(struct rest_request *req, const struct engine_error *e) {
        (void) rest_reply_engine_error(req, e);
        return e->error;
}

int rest_find_device(struct rest_request *req, struct device **ret) {
        struct engine_error e;

        if (engine_device_find(req->rest->manager, req->path_id, ret, &e) < 0)
                return rest_refuse(req, &e);
        return 0;
}

int rest_find_image(struct rest_request *req, struct image **ret) {
        struct engine_error e;

        /* Hashes are shown in lower case; accept them typed in upper case. */
        for (char *p = req->path_id; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        if (engine_image_find(req->rest->manager, "id", req->path_id, ret, &e) >= 0)
                return 0;
        /* A path that names nothing is not found, whatever its shape. */
        if (e.error == -EINVAL)
                e.error = -ENOENT;
        return rest_refuse(req, &e);
}

int rest_find_job(struct rest_request *req, struct job **ret) {
        struct engine_error e;

        if (engine_job_find(req->rest->manager, req->path_id, ret, &e) < 0)
                return rest_refuse(req, &e);
        return 0;
}

/* ---- health ---- */

static int rest_health(struct rest_request *req) {
        struct rest *r = req->rest;
        struct manager *m = r->manager;

        return rest_reply_json(req, 200,
                               json_pack("{s:s, s:s, s:I, s:I, s:I}",
                                         "status", "ok",
                                         "version", PACKAGE_VERSION,
                                         "uptime", (json_int_t) ((now_monotonic_usec() - r->started_usec) / 1000000u),
                                         "devices", (json_int_t) m->n_devices,
                                         "jobs_running", (json_int_t) jobs_count_running(m, NULL)));
}

/* ---- routing ---- */

struct rest_method {
        const char *method;
        enum rest_body_kind body;
        rest_handler_fn handler;
};

static const struct rest_resource_def {
        const char *allow;             /* the Allow header of a 405 */
        bool public;                   /* no token needed: liveness probes */
        struct rest_method methods[3];
} rest_resources[_REST_RESOURCE_MAX] = {
        [REST_RESOURCE_HEALTH] = { "GET, HEAD", true, { { "GET", REST_BODY_NONE, rest_health } } },
        [REST_RESOURCE_METRICS] = { "GET, HEAD", false, { { "GET", REST_BODY_NONE, rest_metrics } } },
        [REST_RESOURCE_EVENTS] = { "GET", false, { { "GET", REST_BODY_NONE, rest_events_stream } } },
        [REST_RESOURCE_DEVICES] = { "GET, HEAD, POST",
                                    false,
                                    { { "GET", REST_BODY_NONE, rest_devices_list },
                                      { "POST", REST_BODY_JSON, rest_devices_add } } },
        [REST_RESOURCE_DEVICE] = { "GET, HEAD, PATCH, DELETE",
                                   false,
                                   { { "GET", REST_BODY_NONE, rest_device_get },
                                     { "PATCH", REST_BODY_JSON, rest_device_patch },
                                     { "DELETE", REST_BODY_NONE, rest_device_forget } } },
        [REST_RESOURCE_DEVICE_PROBE] = { "POST", false, { { "POST", REST_BODY_NONE, rest_device_probe } } },
        [REST_RESOURCE_DEVICE_HISTORY] = { "GET, HEAD", false, { { "GET", REST_BODY_NONE, rest_device_history } } },
        [REST_RESOURCE_DEVICE_LABELS] = { "GET, HEAD, PUT",
                                          false,
                                          { { "GET", REST_BODY_NONE, rest_device_labels_get },
                                            { "PUT", REST_BODY_JSON, rest_device_labels_put } } },
        [REST_RESOURCE_IMAGES] = { "GET, HEAD, POST",
                                   false,
                                   { { "GET", REST_BODY_NONE, rest_images_list },
                                     { "POST", REST_BODY_IMAGE, rest_image_upload } } },
        [REST_RESOURCE_IMAGE] = { "GET, HEAD, PATCH, DELETE",
                                  false,
                                  { { "GET", REST_BODY_NONE, rest_image_get },
                                    { "PATCH", REST_BODY_JSON, rest_image_patch },
                                    { "DELETE", REST_BODY_NONE, rest_image_delete } } },
        [REST_RESOURCE_JOBS] = { "GET, HEAD, POST",
                                 false,
                                 { { "GET", REST_BODY_NONE, rest_jobs_list },
                                   { "POST", REST_BODY_JSON, rest_jobs_create } } },
        [REST_RESOURCE_JOB] = { "GET, HEAD, DELETE",
                                false,
                                { { "GET", REST_BODY_NONE, rest_job_get },
                                  { "DELETE", REST_BODY_NONE, rest_job_cancel } } },
        [REST_RESOURCE_JOB_CANCEL] = { "POST", false, { { "POST", REST_BODY_NONE, rest_job_cancel } } },
        [REST_RESOURCE_ROLLOUTS] = { "GET, HEAD, POST",
                                     false,
                                     { { "GET", REST_BODY_NONE, rest_rollouts_list },
                                       { "POST", REST_BODY_JSON, rest_rollouts_create } } },
        [REST_RESOURCE_ROLLOUTS_PLAN] = { "POST", false, { { "POST", REST_BODY_JSON, rest_rollouts_plan } } },
        [REST_RESOURCE_ROLLOUT] = { "GET, HEAD", false, { { "GET", REST_BODY_NONE, rest_rollout_get } } },
        [REST_RESOURCE_ROLLOUT_MEMBERS] = { "GET, HEAD", false, { { "GET", REST_BODY_NONE, rest_rollout_members } } },
        [REST_RESOURCE_ROLLOUT_PAUSE] = { "POST", false, { { "POST", REST_BODY_NONE, rest_rollout_pause } } },
        [REST_RESOURCE_ROLLOUT_RESUME] = { "POST", false, { { "POST", REST_BODY_NONE, rest_rollout_resume } } },
        [REST_RESOURCE_ROLLOUT_CANCEL] = { "POST", false, { { "POST", REST_BODY_NONE, rest_rollout_cancel } } },
        [REST_RESOURCE_ROLLOUT_ACTIVATE] = { "POST", false, { { "POST", REST_BODY_NONE, rest_rollout_activate } } },
        [REST_RESOURCE_ROLLOUT_PLAN] = { "GET, HEAD", false, { { "GET", REST_BODY_NONE, rest_rollout_replan } } },
        [REST_RESOURCE_JOB_ACTIVATE] = { "POST", false, { { "POST", REST_BODY_NONE, rest_job_activate } } },
        [REST_RESOURCE_DISTRIBUTIONS] = { "GET, HEAD, POST",
                                          false,
                                          { { "GET", REST_BODY_NONE, rest_distributions_list },
                                            { "POST", REST_BODY_JSON, rest_distributions_create } } },
        [REST_RESOURCE_DISTRIBUTION] = { "GET, HEAD, DELETE",
                                         false,
                                         { { "GET", REST_BODY_NONE, rest_distribution_get },
                                           { "DELETE", REST_BODY_NONE, rest_distribution_cancel } } },
        [REST_RESOURCE_DISTRIBUTION_CANCEL] = { "POST",
                                                false,
                                                { { "POST", REST_BODY_NONE, rest_distribution_cancel } } },
        [REST_RESOURCE_DISTRIBUTION_SUSPEND] = { "POST",
                                                 false,
                                                 { { "POST", REST_BODY_NONE, rest_distribution_suspend } } },
        [REST_RESOURCE_DISTRIBUTION_RESUME] = { "POST",
                                                false,
                                                { { "POST", REST_BODY_NONE, rest_distribution_resume } } },
        [REST_RESOURCE_DISTRIBUTION_APPLY] = { "POST", false, { { "POST", REST_BODY_NONE, rest_distribution_apply } } },
};

static bool device_known(const char *tail, void *userdata) {
        return engine_device_lookup(userdata, tail) != NULL;
}

static enum rest_resource rest_route(struct rest *r, const char *url, char **ret_id) {
        return rest_route_path(url, device_known, r->manager, ret_id);
}

/* ---- authentication ---- */

static bool rest_authorized(struct rest *r, struct MHD_Connection *c) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        const char *h, *token;
        bool match = false;

        if (!r->auth_required)
                return true;
        h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return false;
        token = h + 7;
        while (*token == ' ')
                token++;
        if (!*token)
                return false;

        /* Comparing digests of equal length in constant time tells a timing
         * attacker neither the tokens' contents nor their lengths. */
        sha256_of(token, strlen(token), digest);
        for (size_t i = 0; i < r->n_tokens; i++)
                match |= memeql_sec(digest, r->token_digests[i], sizeof(digest)) != 0;
        explicit_bzero(digest, sizeof(digest));
        return match;
}

struct token_digests {
        uint8_t (*digests)[SHA256_DIGEST_SIZE];
        size_t n;
};

static int add_token_digest(const char *token, size_t len, void *userdata) {
        struct token_digests *t = userdata;
        void *p = realloc(t->digests, (t->n + 1) * sizeof(*t->digests));

        if (!p)
                return log_error_errno(-ENOMEM, "REST: out of memory reading the tokens file");
        t->digests = p;
        sha256_of(token, len, t->digests[t->n++]);
        return 0;
}

/* ---- requests ---- */

static struct rest_request *rest_request_free(struct rest_request *req) {
        if (!req)
                return NULL;
        req->rest->requests_in_flight--;
        req->rest->last_request_end_usec = now_monotonic_usec();
        closep(&req->upload_fd);
        free(req->body);
        json_decref(req->json);
        free(req->path_id);
        free(req->target_bad_query);
        free(req);
        return NULL;
}

static bool content_type_is_json(const char *ct) {
        size_t n = strlen("application/json");

        if (!ct)
                return false;
        while (*ct == ' ')
                ct++;
        return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Content-Length when the client sent one; -ENOENT for chunked uploads. */
static int request_content_length(struct rest_request *req, uint64_t *ret) {
        const char *s = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!s)
                return -ENOENT;
        return parse_decimal(s, ret);
}

static uint64_t request_body_limit(struct rest_request *req) {
        const struct config *c = req->rest->manager->config;
        return req->body_kind == REST_BODY_IMAGE ? c->image_max_size : c->rest_max_body;
}

static int rest_reply_too_large(struct rest_request *req) {
        if (req->body_kind == REST_BODY_IMAGE)
                return rest_reply_error(req, 413, "payload_too_large",
                                        "The image is larger than the limit of %" PRIu64 " bytes ([images] max_size).",
                                        request_body_limit(req));
        return rest_reply_error(req, 413, "payload_too_large",
                                "The request body is larger than the limit of %" PRIu64 " bytes ([rest] max_body).",
                                request_body_limit(req));
}

struct framing {
        const char *content_length;  /* the first one */
        bool content_length_differs; /* another one with another value */
        const char *transfer_encoding;
        unsigned n_transfer_encoding;
};

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        struct framing *f = cls;

        if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
                if (!f->content_length)
                        f->content_length = value;
                else if (!streq(f->content_length, value))
                        f->content_length_differs = true;
        } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
                f->transfer_encoding = value;
                f->n_transfer_encoding++;
        }
        return MHD_YES;
}

/* How the body is framed, checked before MHD reads any of it: where two
 * parties could read one request's length differently (two lengths, a
 * length beside chunked), a proxy in front of us and we would disagree
 * on where the next request starts; that is request smuggling (RFC 9112
 * 6.3).  And MHD 0.9.75 knows no transfer coding but chunked: with gzip
 * it would wait for a body it cannot delimit.  Each is refused and the
 * connection closed, since what follows on it cannot be trusted. */
static int rest_check_framing(struct rest_request *req) {
        struct framing f = {};

        (void) MHD_get_connection_values(req->connection, MHD_HEADER_KIND, framing_header, &f);
        if (f.content_length_differs)
                return rest_reply_error_with_header(req, 400, "bad_request", MHD_HTTP_HEADER_CONNECTION, "close",
                                                    "The request has Content-Length headers that disagree.");
        if (f.n_transfer_encoding > 0 && f.content_length)
                return rest_reply_error_with_header(req, 400, "bad_request", MHD_HTTP_HEADER_CONNECTION, "close",
                                                    "The request has both Content-Length and Transfer-Encoding.");
        if (f.n_transfer_encoding > 1 || (f.transfer_encoding && strcasecmp(f.transfer_encoding, "chunked") != 0))
                return rest_reply_error_with_header(req, 400, "bad_request", MHD_HTTP_HEADER_CONNECTION, "close",
                                                    "Transfer-Encoding must be 'chunked', the one transfer coding "
                                                    "understood here.");
        return 0;
}

/* At the headers: route, authenticate, check the method and what the
 * body will be.  Everything refused here is refused before any of the body
 * is read. */
static int rest_request_begin(struct rest_request *req, const char *url, const char *method) {
        struct rest *r = req->rest;
        const struct rest_resource_def *def;
        enum rest_resource res;
        const struct rest_method *rm = NULL;
        uint64_t length;
        int k;

        req->head = streq(method, "HEAD");
        req->method = req->head ? "GET" : method;
        if (rest_check_framing(req) < 0)
                return -EINVAL;
        /* Before routing: the url MHD hands us is unescaped and ends at a
         * %00, so it is not the path the client sent. */
        if (req->target_bad_path)
                return rest_reply_error(req, 400, "invalid_path",
                                        "The path holds a control character (raw or %%-escaped).");
        res = rest_route(r, url, &req->path_id);
        def = &rest_resources[res];

        if (!(res != REST_RESOURCE_NONE && def->public) && !rest_authorized(r, req->connection))
                return rest_reply_error_with_header(req, 401, "unauthorized", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                                    "Bearer realm=\"smpgwd\"",
                                                    "A valid 'Authorization: Bearer <token>' header is required.");
        if (res == REST_RESOURCE_NONE)
                return rest_reply_error(req, 404, "not_found", "No such resource: %s", url);
        if (req->target_bad_query)
                return rest_reply_error(req, 400, "invalid_field",
                                        "Query parameter '%s' holds a control character.", req->target_bad_query);

        for (size_t i = 0; i < ELEMENTSOF(def->methods) && def->methods[i].method; i++)
                if (streq(def->methods[i].method, req->method))
                        rm = &def->methods[i];
        if (!rm)
                return rest_reply_error_with_header(req, 405, "method_not_allowed", MHD_HTTP_HEADER_ALLOW, def->allow,
                                                    "Method %s is not allowed on %s; allowed: %s.", method, url,
                                                    def->allow);

        req->handler = rm->handler;
        req->body_kind = rm->body;
        k = request_content_length(req, &length);

        if (req->body_kind == REST_BODY_JSON) {
                const char *ct = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_TYPE);
                if (!ct && k >= 0 && length == 0)
                        return rest_reply_error(req, 400, "bad_request",
                                                "This request needs a JSON object as its body.");
                if (!content_type_is_json(ct))
                        return rest_reply_error(req, 415, "unsupported_media_type",
                                                "The body must be sent as 'Content-Type: application/json' (got %s%s%s).",
                                                ct ? "'" : "", ct ? ct : "none", ct ? "'" : "");
        }
        if (k >= 0 && length > request_body_limit(req))
                return rest_reply_too_large(req);

        if (req->body_kind == REST_BODY_IMAGE)
                return rest_image_upload_begin(req);
        return 0;
}

/* One chunk of the body.  Returns negative to close the connection. */
static int rest_request_body(struct rest_request *req, const char *data, size_t size) {
        uint64_t limit = request_body_limit(req);

        if (req->body_too_large || req->upload_error) {
                /* Drain a bounded amount so the client can still read our
                 * error; a client that keeps sending is cut off. */
                req->drained += size;
                return req->drained > MAX(limit, (uint64_t) 1024 * 1024) ? -EMSGSIZE : 0;
        }

        if (req->body_kind == REST_BODY_IMAGE)
                return rest_image_upload_chunk(req, data, size);

        if (req->body_len + size > limit) {
                req->body_too_large = true;
                free(req->body);
                req->body = NULL;
                req->body_len = req->body_alloc = 0;
                return 0;
        }
        if (req->body_len + size + 1 > req->body_alloc) {
                size_t want = MAX(req->body_alloc * 2, req->body_len + size + 1);
                char *p;

                want = MIN(want, (size_t) limit + 1);
                p = realloc(req->body, want);
                if (!p)
                        return -ENOMEM;
                req->body = p;
                req->body_alloc = want;
        }
        memcpy(req->body + req->body_len, data, size);
        req->body_len += size;
        req->body[req->body_len] = '\0';
        return 0;
}

/* The whole body is in: parse it and run the handler. */
static int rest_request_finish(struct rest_request *req) {
        int r;

        if (req->body_too_large)
                return rest_reply_too_large(req);
        if (req->upload_error)
                return rest_reply_errno(req, req->upload_error, "Storing the upload failed: %s.",
                                        strerror(abs(req->upload_error)));

        if (req->body_kind == REST_BODY_JSON) {
                struct rest_body_error e;

                if (rest_body_parse(req->body, req->body_len, &req->json, &e) < 0)
                        return rest_reply_body_error(req, &e);
        }

        r = req->handler(req);
        if (!req->replied)
                return rest_reply_errno(req, r < 0 ? r : -EIO, "Internal error: %s.",
                                        strerror(r < 0 ? -r : EIO));
        return r;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the request line is in, and this is the
 * only place that sees the request target as the client sent it.  The
 * per-request state starts here (MHD hands it to the access handler as
 * *con_cls, and reports its end through NOTIFY_COMPLETED even when the
 * access handler never runs). */
static void *rest_request_new(void *cls, const char *uri, struct MHD_Connection *connection) {
        struct rest *r = cls;
        struct rest_request *req;
        struct rest_target target;

        req = calloc(1, sizeof(*req));
        if (!req)
                return NULL;
        req->rest = r;
        req->connection = connection;
        req->upload_fd = -1;
        req->started_usec = now_monotonic_usec();

        rest_conn_request_line(connection);
        if (rest_target_scan(uri, &target) < 0) {
                free(req);
                return NULL;
        }
        r->requests_in_flight++;
        req->target_bad_path = target.bad_path;
        req->target_bad_query = target.bad_query;
        if (target.n_params > REST_QUERY_PARAMS_MAX) {
                /* MHD would run out of its connection's memory storing
                 * them and then neither answer nor close; the access
                 * handler would never run. */
                char message[128];

                snprintf(message, sizeof(message), "The query string has more than %u parameters.",
                         REST_QUERY_PARAMS_MAX);
                rest_conn_refuse(connection, 431, "Request Header Fields Too Large", "request_too_large", message);
        }
        return req;
}

static enum MHD_Result rest_access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                           const char *method, const char *version, const char *upload_data,
                                           size_t *upload_data_size, void **con_cls) {
        struct rest *r = cls;
        struct rest_request *req = *con_cls;

        /* Answered on the socket already (rest-loop.c): end it. */
        if (rest_conn_refused(connection))
                return MHD_NO;
        if (!req) {
                /* rest_request_new() ran out of memory. */
                req = rest_request_new(r, "", connection);
                if (!req)
                        return MHD_NO;
                *con_cls = req;
        }
        if (!req->begun) {
                req->begun = true;
                req->method = method;
                rest_conn_request_begins(connection);
                r->manager->stats.rest_requests++;
                (void) rest_request_begin(req, url, method);
                return req->queue_failed ? MHD_NO : MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t size = *upload_data_size;

                *upload_data_size = 0;
                rest_conn_body_progress(connection);
                if (req->replied)
                        return MHD_YES;
                return rest_request_body(req, upload_data, size) < 0 ? MHD_NO : MHD_YES;
        }

        if (!req->replied)
                (void) rest_request_finish(req);
        return req->queue_failed ? MHD_NO : MHD_YES;
}

static void rest_request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                                   enum MHD_RequestTerminationCode toe) {
        struct rest_request *req = *con_cls;

        rest_conn_request_ends(connection);
        if (!req)
                return;
        /* Event streams last as long as their client: not a request's time. */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && req->begun && req->handler != rest_events_stream)
                latency_add(&req->rest->manager->stats.rest_request, now_monotonic_usec() - req->started_usec);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->upload_fd >= 0)
                log_debug("REST: an image upload ended before it was complete (%d); dropped", (int) toe);
        *con_cls = rest_request_free(req);
}

static void rest_mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);

/* libmicrohttpd logs per connection ("Server reached connection limit"
 * for each client past the per-address limit), so a client could flood
 * the journal: at most this many of its messages per window. */
#define REST_MHD_LOG_BURST 10u
#define REST_MHD_LOG_WINDOW_USEC (10ull * 1000000ull)

static void rest_mhd_log(void *cls, const char *fmt, va_list ap) {
        struct rest *r = cls;
        uint64_t now = now_monotonic_usec();
        char msg[512];
        size_t n;

        if (now - r->mhd_log_window_usec >= REST_MHD_LOG_WINDOW_USEC) {
                if (r->mhd_log_suppressed > 0)
                        log_warning("libmicrohttpd: %u more messages suppressed", r->mhd_log_suppressed);
                r->mhd_log_window_usec = now;
                r->mhd_log_count = r->mhd_log_suppressed = 0;
        }
        if (r->mhd_log_count >= REST_MHD_LOG_BURST) {
                r->mhd_log_suppressed++;
                return;
        }
        r->mhd_log_count++;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        log_warning("libmicrohttpd: %s", msg);
}

/* ---- start, reload, stop ---- */

static int parse_listen(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_v6) {
        _cleanup_free_ char *host = NULL;
        const char *colon, *port_s;
        uint64_t port;

        if (!listen || !*listen)
                return -EINVAL;
        if (listen[0] == '[') {
                const char *end = strchr(listen, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                host = strndup(listen + 1, (size_t) (end - listen - 1));
                port_s = end + 2;
        } else {
                colon = strrchr(listen, ':');
                if (!colon || strchr(listen, ':') != colon)
                        return -EINVAL;
                host = strndup(listen, (size_t) (colon - listen));
                port_s = colon + 1;
        }
        if (!host)
                return -ENOMEM;
        if (parse_decimal(port_s, &port) < 0 || port > 65535)
                return -EINVAL;

        memset(ret, 0, sizeof(*ret));
        if (listen[0] == '[') {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *) ret;
                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*sa);
                *ret_v6 = true;
        } else {
                struct sockaddr_in *sa = (struct sockaddr_in *) ret;
                sa->sin_family = AF_INET;
                sa->sin_port = htons((uint16_t) port);
                if (streq(host, "") || streq(host, "*"))
                        sa->sin_addr.s_addr = htonl(INADDR_ANY);
                else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*sa);
                *ret_v6 = false;
        }
        return 0;
}

static int read_pem(const char *path, char **ret) {
        size_t size;

        /* A PEM certificate chain or key is a few KiB; anything huge is
         * not one, and a FIFO must not stall the start. */
        return config_read_file(path, CONFIG_PEM_FILE_MAX, ret, &size);
}

int rest_start(struct manager *m, struct rest **ret) {
        _cleanup_(rest_freep) struct rest *r = NULL;
        const struct config *c = m->config;
        const char *listen = c->rest_listen ? c->rest_listen : "127.0.0.1:8080";
        struct MHD_OptionItem tls_options[3] = {
                { MHD_OPTION_END, 0, NULL },
                { MHD_OPTION_END, 0, NULL },
                { MHD_OPTION_END, 0, NULL },
        };
        struct sockaddr_storage sa;
        socklen_t sa_len;
        unsigned flags, timeout_s, max_connections;
        bool v6;
        int k;

        r = calloc(1, sizeof(*r));
        if (!r)
                return log_error_errno(-ENOMEM, "REST: out of memory");
        r->manager = m;
        r->started_usec = now_monotonic_usec();
        r->epoll_fdinfo_fd = -1;

        k = parse_listen(listen, &sa, &sa_len, &v6);
        if (k < 0)
                return log_error_errno(k, "REST: cannot listen on '%s': want IPV4:PORT or [IPV6]:PORT", listen);

        _cleanup_(rest_tokens_freep) struct rest_tokens *tokens = NULL;
        k = rest_tokens_read(c->rest_tokens_file, &tokens);
        if (k < 0)
                return k;
        rest_tokens_install(r, TAKE_PTR(tokens));

        flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (v6)
                flags |= MHD_USE_IPv6;
        if (c->rest_tls_cert || c->rest_tls_key) {
                if (!c->rest_tls_cert || !c->rest_tls_key)
                        return log_error_errno(-EINVAL, "REST: tls_cert and tls_key must be set together");
                if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
                        return log_error_errno(-EOPNOTSUPP,
                                               "REST: libmicrohttpd was built without TLS, cannot use tls_cert/tls_key");
                k = read_pem(c->rest_tls_cert, &r->tls_cert_pem);
                if (k < 0)
                        return log_error_errno(k, "REST: cannot read tls_cert '%s': %m", c->rest_tls_cert);
                k = read_pem(c->rest_tls_key, &r->tls_key_pem);
                if (k < 0)
                        return log_error_errno(k, "REST: cannot read tls_key '%s': %m", c->rest_tls_key);
                flags |= MHD_USE_TLS;
                tls_options[0] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, r->tls_cert_pem };
                tls_options[1] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, r->tls_key_pem };
        }

        timeout_s = (unsigned) MAX(c->rest_timeout_usec / 1000000u, (uint64_t) 1);
        max_connections = c->rest_max_connections ? c->rest_max_connections : 64;
        r->max_connections = max_connections;
        r->header_timeout_usec = MIN(REST_HEADER_TIMEOUT_USEC, (uint64_t) timeout_s * 1000000u);

        r->daemon = MHD_start_daemon(
                flags, 0, NULL, NULL, rest_access_handler, r,
                MHD_OPTION_EXTERNAL_LOGGER, rest_mhd_log, r,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
                MHD_OPTION_CONNECTION_LIMIT, max_connections,
                /* One client may not take every connection (SSE streams
                 * stay open): at most half of them per address. */
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, MAX(max_connections / 2, 1u),
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) REST_CONNECTION_MEMORY_LIMIT,
                MHD_OPTION_NOTIFY_COMPLETED, rest_request_completed, r,
                MHD_OPTION_NOTIFY_CONNECTION, rest_on_connection, r,
                MHD_OPTION_URI_LOG_CALLBACK, rest_request_new, r,
                MHD_OPTION_ARRAY, tls_options,
                MHD_OPTION_END);
        if (!r->daemon)
                return log_error_errno(-EADDRNOTAVAIL, "REST: cannot start the HTTP server on '%s' (see above)",
                                       listen);

        k = rest_loop_start(r);
        if (k < 0)
                return k;

        k = rest_events_start(r);
        if (k < 0)
                return k;

        if (r->auth_required)
                log_info("REST API listening on %s%s (bearer tokens required)",
                         c->rest_tls_cert ? "https://" : "http://", listen);
        else
                /* Loopback is no boundary between the users of one host:
                 * the bus policy keeps pushing to group smpgw, this does
                 * not (doc/security.md). */
                log_notice("REST API listening on %s%s without tokens: any process that can reach it, "
                           "every local user included, may push firmware; set [rest] tokens_file "
                           "(doc/security.md)",
                           c->rest_tls_cert ? "https://" : "http://", listen);
        *ret = TAKE_PTR(r);
        return 0;
}

bool rest_busy(struct rest *r, uint64_t now_usec) {
        if (!r)
                return false;
        return r->requests_in_flight > r->n_sse_streams ||
               (r->last_request_end_usec != 0 && now_usec - r->last_request_end_usec < REST_BUSY_WINDOW_USEC);
}

struct rest_tokens {
        struct token_digests digests;
        bool required;
};

struct rest_tokens *rest_tokens_free(struct rest_tokens *t) {
        if (!t)
                return NULL;
        free(t->digests.digests);
        free(t);
        return NULL;
}

int rest_tokens_read(const char *path, struct rest_tokens **ret) {
        _cleanup_(rest_tokens_freep) struct rest_tokens *t = calloc(1, sizeof(*t));
        int k;

        if (!ret)
                return -EINVAL;
        if (!t)
                return -ENOMEM;
        if (path) {
                /* Bounded (CONFIG_TOKENS_FILE_MAX), a regular file only,
                 * errors logged with the line (never the token):
                 * tokens_file=/dev/zero must not eat the memory. */
                k = config_tokens_load(path, add_token_digest, &t->digests);
                if (k < 0)
                        return k;
                if (t->digests.n == 0)
                        log_warning("REST: the tokens file '%s' holds no token: every request but /api/v1/health "
                                    "is refused",
                                    path);
                t->required = true;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

void rest_tokens_install(struct rest *r, struct rest_tokens *t) {
        if (!r || !t) {
                rest_tokens_free(t);
                return;
        }
        free(r->token_digests);
        r->token_digests = TAKE_PTR(t->digests.digests);
        r->n_tokens = t->digests.n;
        r->auth_required = t->required;
        rest_tokens_free(t);
}

struct rest *rest_free(struct rest *r) {
        if (!r)
                return NULL;
        r->stopping = true;

        /* MHD calls suspending with connections still suspended an API
         * violation: resume (and end) every event stream first. */
        rest_events_stop(r);
        if (r->daemon) {
                MHD_stop_daemon(r->daemon);
                r->daemon = NULL;
        }
        rest_loop_stop(r);
        r->keepalive_timer = sd_event_source_disable_unref(r->keepalive_timer);

        if (r->token_digests)
                explicit_bzero(r->token_digests, r->n_tokens * sizeof(*r->token_digests));
        free(r->token_digests);
        if (r->tls_key_pem)
                explicit_bzero(r->tls_key_pem, strlen(r->tls_key_pem));
        free(r->tls_key_pem);
        free(r->tls_cert_pem);
        free(r->hung_up);
        free(r);
        return NULL;
}
