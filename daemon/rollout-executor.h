/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Between the engine's rollout calls (engine-rollout.c) and the executor
 * (rollout-executor.c): the engine checks a request and says no with a
 * sentence; these carry it out.
 */
#pragma once

#include <stdint.h>

struct image;
struct rollout;
struct rollout_executor;

struct rollout *rollout_executor_find(struct rollout_executor *x, uint64_t id);
/* Takes r (stored already); its first step runs at the next loop iteration. */
int rollout_executor_add(struct rollout_executor *x, struct rollout *r);
/* A step of every rollout at the next loop iteration. */
void rollout_executor_kick(struct rollout_executor *x);
/* The boards img declares changed (engine_image_set_boards()): in every
 * unfinished rollout of it, a member not started yet (pending, or its
 * job still queued for its first attempt) whose device the image no
 * longer takes is skipped (incompatible-board, unknown-board; such a job
 * ends failed), and one skipped for its board that the image takes now
 * joins when the filter takes it.  Running members go on.  NULL x is
 * fine. */
void rollout_executor_image_boards_changed(struct rollout_executor *x, const struct image *img);

void rollout_do_pause(struct rollout *r);
void rollout_do_resume(struct rollout *r);
void rollout_do_cancel(struct rollout *r);
void rollout_do_activate(struct rollout *r);
