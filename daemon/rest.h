/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The REST API (doc/openapi.yaml): libmicrohttpd in external-polling mode
 * on the manager's sd-event loop, JSON through jansson, Server-Sent
 * Events, Prometheus metrics, bearer tokens, optional TLS.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct manager;
struct rest;

/* Listens on config.rest_listen.  Logs its errors. */
int rest_start(struct manager *m, struct rest **ret);
/* SIGHUP: the tokens file of the new configuration, read and checked
 * (each failure logged) before anything of that configuration is put in
 * place; then installed, or freed when the reload is refused.  A NULL
 * path: no authentication. */
struct rest_tokens;
int rest_tokens_read(const char *path, struct rest_tokens **ret);
void rest_tokens_install(struct rest *r, struct rest_tokens *t);
struct rest_tokens *rest_tokens_free(struct rest_tokens *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rest_tokens *, rest_tokens_free);
/* Resumes and ends every SSE stream, stops the daemon. */
struct rest *rest_free(struct rest *r);
/* For the watchdog: how many checks in a row (this one included) found
 * the API unable to take a new client although it is below
 * max_connections; 0 when it can.  *ret_reason says what is wrong
 * (static text, NULL when nothing is).  NULL-safe. */
unsigned rest_watchdog_check(struct rest *r, const char **ret_reason);
/* Whether clients are being served (CLOCK_MONOTONIC now): a request in
 * progress (event streams aside), or one answered within the last
 * REST_BUSY_WINDOW_USEC, since a keep-alive client sends its next one
 * right after.  Work that stalls the loop (a checkpoint) waits for a
 * moment this is false.  NULL (REST off): false. */
bool rest_busy(struct rest *r, uint64_t now_usec);
