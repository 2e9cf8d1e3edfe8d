/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside libsmpgw: what the one-shot update (smp-update.c) needs of the
 * phases (smp-update-phase.c) beyond the public API.  Not installed.
 */
#pragma once

#include "smpgw/smp-update.h"

/* smp_update_phase_start(), for a phase that follows another on the same
 * session at once: `fresh` (may be NULL) is the image state the previous
 * phase read last, so activate and verify do not read it again.  The
 * one-shot procedure sends the requests it always sent, no more. */
int update_phase_start_fresh(struct smp_session *s, const struct smp_update_phase_params *params,
                             const struct smp_update_snapshot *fresh, struct smp_update_phase_run **ret);
