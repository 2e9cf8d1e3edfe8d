/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Distributor output parsers and the metadata decoder on untrusted
 * text: none may crash, read past the input, or return something its
 * struct cannot hold; whatever a parser accepts it accepts again from the
 * same text, and decoded metadata encodes back to the same bytes. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mesh-dfu.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;

        struct smp_mesh_dfd_state st, st2;
        if (smp_mesh_dfd_state_parse(text, size, &st) == 0) {
                assert(smp_mesh_dfd_state_parse(text, size, &st2) == 0);
                assert(memcmp(&st, &st2, sizeof(st)) == 0);
        } else
                assert(st.status == 0 && st.phase == 0 && !st.has_params);

        struct smp_mesh_receivers_status rs;
        (void) smp_mesh_receivers_status_parse(text, size, &rs);

        struct smp_mesh_receivers_page *p = malloc(sizeof(*p));
        assert(p);
        if (smp_mesh_receivers_page_parse(text, size, p) == 0) {
                assert(p->n_targets <= SMP_MESH_RECEIVERS_PAGE_MAX);
                assert(p->has_target_cnt || p->n_targets > 0 || p->skipped > 0);
                for (size_t i = 0; i < p->n_targets; i++)
                        assert(smp_mesh_progress_percent(p->targets[i].progress) <= 100);
        } else
                assert(p->n_targets == 0 && !p->complete);
        free(p);

        struct smp_mesh_dfd_capabilities caps;
        (void) smp_mesh_dfd_capabilities_parse(text, size, &caps);

        struct smp_mesh_fw_status fw;
        if (smp_mesh_fw_status_parse(text, size, &fw) == 0)
                assert(fw.fwid_len <= SMP_MESH_FWID_MAXLEN);

        struct smp_mesh_slot_add_result add;
        if (smp_mesh_slot_add_parse(text, size, &add) == 0)
                assert(add.outcome <= SMP_MESH_SLOT_FAILED);
        struct smp_mesh_slot_del_result del;
        (void) smp_mesh_slot_del_parse(text, size, &del);

        /* the same bytes as metadata */
        struct smp_mesh_metadata md;
        if (smp_mesh_metadata_decode(data, size, &md) == 0) {
                uint8_t *again = malloc(size ? size : 1);
                assert(again);
                if (md.size <= SMP_MESH_METADATA_SIZE_MAX) {
                        int n = smp_mesh_metadata_encode(&md, again, size);
                        assert(n == (int) size);
                        assert(memcmp(again, data, size) == 0);
                }
                free(again);
        }

        /* and as hex */
        uint8_t bytes[64];
        int n = smp_mesh_unhex(text, size, bytes, sizeof(bytes));
        assert(n < 0 || (size_t) n * 2 == size);
        return 0;
}
