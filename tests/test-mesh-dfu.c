/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bluetooth Mesh DFU helpers: the parsers against the printed outputs in
 * tests/data/mesh-dfu/ (rendered from Zephyr's shell format strings of
 * v3.4 and v3.5+, or quoted from nRF Connect SDK's documentation; sources
 * in its README.md), truncated and noisy variants, junk; the firmware ID
 * and metadata encodings against hand-assembled bytes and the NCS
 * documentation's example; the command builders against the shell
 * buffer.
 */
#include <errno.h>
#include <limits.h>

#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-shell.h"
#include "test-util.h"

static char text[8192];
static size_t text_len;

/* Loads tests/data/mesh-dfu/<name> into text (and an exactly sized heap
 * copy, so that ASan sees any read past the end). */
static char *load(const char *name) {
        const char *dir = getenv("SMPGW_TEST_DATA");
        char path[4096];

        ASSERT_TRUE(dir);
        snprintf(path, sizeof(path), "%s/mesh-dfu/%s", dir, name);
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "cannot open %s\n", path);
                abort();
        }
        text_len = fread(text, 1, sizeof(text), f);
        ASSERT_TRUE(feof(f));
        fclose(f);
        char *copy = malloc(text_len ? text_len : 1);
        ASSERT_TRUE(copy);
        memcpy(copy, text, text_len);
        return copy;
}

/* ---- status lines ---- */

static void check_active(const char *file, uint16_t group, bool apply) {
        struct smp_mesh_dfd_state st;
        char *t = load(file);

        ASSERT_OK(smp_mesh_dfd_state_parse(t, text_len, &st));
        ASSERT_EQ(st.status, SMP_MESH_DFD_SUCCESS);
        ASSERT_EQ(st.phase, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        ASSERT_TRUE(st.has_params);
        ASSERT_EQ(st.group, group);
        ASSERT_EQ(st.app_idx, 0);
        ASSERT_EQ(st.ttl, 255);
        ASSERT_EQ(st.timeout_base, 0);
        ASSERT_EQ(st.xfer_mode, SMP_MESH_XFER_MODE_PUSH);
        ASSERT_EQ(st.apply, apply);
        ASSERT_EQ(st.slot_idx, 0);
        free(t);
}

static void test_dfd_state(void) {
        struct smp_mesh_dfd_state st;
        char *t;

        check_active("v3.4-dfd-get-active.txt", 0, true);   /* "group": 0x0000 */
        check_active("v3.5-dfd-get-active.txt", 0xc001, false);

        t = load("dfd-get-idle.txt");
        ASSERT_OK(smp_mesh_dfd_state_parse(t, text_len, &st));
        ASSERT_EQ(st.phase, SMP_MESH_DFD_PHASE_IDLE);
        ASSERT_TRUE(!st.has_params);
        free(t);

        t = load("v3.5-dfd-start-busy.txt");
        ASSERT_OK(smp_mesh_dfd_state_parse(t, text_len, &st));
        ASSERT_EQ(st.status, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
        ASSERT_STREQ(smp_mesh_dfd_status_to_string(st.status), "busy-with-distribution");
        free(t);

        t = load("v3.5-dfd-apply-wrong-phase.txt");
        ASSERT_OK(smp_mesh_dfd_state_parse(t, text_len, &st));
        ASSERT_EQ(st.status, SMP_MESH_DFD_ERR_WRONG_PHASE);
        free(t);

        t = load("ncs-doc-dfd-get.txt");
        ASSERT_OK(smp_mesh_dfd_state_parse(t, text_len, &st));
        ASSERT_EQ(st.phase, SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS);
        ASSERT_TRUE(st.has_params);
        ASSERT_TRUE(!st.apply);
        free(t);

        /* Not a status line: a receivers status has no phase. */
        t = load("receivers-add-ok.txt");
        ASSERT_EQ(smp_mesh_dfd_state_parse(t, text_len, &st), -EBADMSG);
        free(t);
}

/* A status line cut anywhere: never a wrong value, parameters only when
 * all of them made it. */
static void test_dfd_state_truncated(void) {
        char *t = load("v3.5-dfd-get-active.txt");
        size_t full = text_len;

        for (size_t n = 0; n <= full; n++) {
                struct smp_mesh_dfd_state st;
                char *cut = malloc(n ? n : 1);
                memcpy(cut, t, n);
                int r = smp_mesh_dfd_state_parse(cut, n, &st);
                if (r == 0) {
                        ASSERT_EQ(st.status, 0);
                        ASSERT_EQ(st.phase, 1);
                        if (st.has_params)
                                ASSERT_EQ(st.group, 0xc001);
                        /* the text ends "slot_idx": 0 }\r\n: the 0 counts once
                         * something follows it */
                        ASSERT_EQ(st.has_params, n >= full - 3);
                } else
                        ASSERT_EQ(r, -EBADMSG);
                free(cut);
        }
        free(t);
}

static void test_receivers_status(void) {
        struct smp_mesh_receivers_status rs;
        char *t;

        t = load("receivers-add-ok.txt");
        ASSERT_OK(smp_mesh_receivers_status_parse(t, text_len, &rs));
        ASSERT_EQ(rs.status, 0);
        ASSERT_EQ(rs.target_cnt, 2);
        free(t);
        t = load("receivers-add-full.txt");
        ASSERT_OK(smp_mesh_receivers_status_parse(t, text_len, &rs));
        ASSERT_EQ(rs.status, SMP_MESH_DFD_ERR_INSUFFICIENT_RESOURCES);
        ASSERT_EQ(rs.target_cnt, 8);
        free(t);
        t = load("receivers-add-busy.txt");
        ASSERT_OK(smp_mesh_receivers_status_parse(t, text_len, &rs));
        ASSERT_EQ(rs.status, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
        free(t);
        t = load("receivers-add-parse-error.txt");
        ASSERT_EQ(smp_mesh_receivers_status_parse(t, text_len, &rs), -EBADMSG);
        free(t);
}

/* ---- receivers pages ---- */

static void check_two(const struct smp_mesh_receivers_page *p, uint8_t progress) {
        ASSERT_TRUE(p->has_target_cnt);
        ASSERT_EQ(p->n_targets, 2);
        for (unsigned i = 0; i < 2; i++) {
                ASSERT_EQ(p->targets[i].index, i);
                ASSERT_EQ(p->targets[i].blob_addr, 0x0100 + i);
                ASSERT_EQ(p->targets[i].phase, SMP_MESH_DFU_PHASE_TRANSFER_ACTIVE);
                ASSERT_EQ(p->targets[i].status, 0);
                ASSERT_EQ(p->targets[i].blob_status, 0);
                ASSERT_EQ(p->targets[i].progress, progress);
                ASSERT_EQ(p->targets[i].img_idx, 0);
        }
}

static void test_receivers_pages(void) {
        struct smp_mesh_receivers_page p;
        char *t;

        t = load("v3.4-receivers-get-2.txt");               /* 0x%04x addresses */
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        check_two(&p, 12);
        ASSERT_EQ(p.target_cnt, 2);
        ASSERT_TRUE(p.complete);
        ASSERT_EQ(p.skipped, 0);
        ASSERT_EQ(smp_mesh_progress_percent(p.targets[0].progress), 24);
        free(t);

        t = load("v3.5-receivers-get-2.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        check_two(&p, 12);
        ASSERT_TRUE(p.complete);
        free(t);

        t = load("v3.5-receivers-get-2-log-noise.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        check_two(&p, 12);
        ASSERT_TRUE(p.complete);
        free(t);

        t = load("v3.5-receivers-get-8.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        ASSERT_EQ(p.target_cnt, 8);
        ASSERT_EQ(p.n_targets, 8);
        ASSERT_TRUE(p.complete);
        ASSERT_EQ(p.targets[3].blob_addr, 0x0103);
        ASSERT_EQ(p.targets[3].phase, SMP_MESH_DFU_PHASE_APPLY_FAIL);
        ASSERT_EQ(p.targets[3].status, SMP_MESH_DFU_ERR_INTERNAL);
        ASSERT_EQ(p.targets[3].blob_status, 9);
        ASSERT_EQ(p.targets[7].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
        ASSERT_EQ(smp_mesh_progress_percent(p.targets[7].progress), 100);
        free(t);

        /* Cut by a 300-byte dummy shell buffer: the whole entries only. */
        t = load("v3.5-receivers-get-8-cut299.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        ASSERT_EQ(p.target_cnt, 8);
        ASSERT_EQ(p.n_targets, 2);
        ASSERT_EQ(p.skipped, 1);
        ASSERT_TRUE(!p.complete);
        ASSERT_EQ(p.targets[1].index, 1);
        free(t);

        t = load("v3.5-receivers-get-page-2-of-8.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        ASSERT_EQ(p.n_targets, 2);
        ASSERT_EQ(p.targets[0].index, 2);
        ASSERT_EQ(p.targets[1].index, 3);
        ASSERT_EQ(p.targets[1].blob_addr, 0x0103);
        free(t);

        /* The documentation's example: no comma between entries, "\n". */
        t = load("ncs-doc-receivers-get.txt");
        ASSERT_OK(smp_mesh_receivers_page_parse(t, text_len, &p));
        ASSERT_EQ(p.target_cnt, 1);
        ASSERT_EQ(p.n_targets, 2);
        ASSERT_EQ(p.targets[0].blob_addr, 4);
        ASSERT_EQ(p.targets[1].blob_addr, 5);
        ASSERT_EQ(p.targets[1].progress, 50);
        ASSERT_TRUE(p.complete);
        free(t);

        /* No receivers: the shell prints nothing (ret -EINVAL). */
        ASSERT_EQ(smp_mesh_receivers_page_parse("", 0, &p), -EBADMSG);
        ASSERT_EQ(smp_mesh_receivers_page_parse(NULL, 0, &p), -EBADMSG);
}

/* Every prefix of a page parses to a prefix of its entries, each right. */
static void test_receivers_page_every_cut(void) {
        struct smp_mesh_receivers_page whole, p;
        char *t = load("v3.4-receivers-get-2.txt");
        size_t full = text_len;

        ASSERT_OK(smp_mesh_receivers_page_parse(t, full, &whole));
        const char *last_brace = memrchr(t, '}', full);
        ASSERT_TRUE(last_brace);
        for (size_t n = 0; n < full; n++) {
                char *cut = malloc(n ? n : 1);
                memcpy(cut, t, n);
                int r = smp_mesh_receivers_page_parse(cut, n, &p);
                if (r == 0) {
                        ASSERT_TRUE(p.n_targets <= 2);
                        for (size_t i = 0; i < p.n_targets; i++)
                                ASSERT_MEMEQ(&p.targets[i], &whole.targets[i], sizeof(p.targets[i]));
                        ASSERT_EQ(p.complete, n > (size_t) (last_brace - t));
                } else
                        ASSERT_EQ(r, -EBADMSG);
                free(cut);
        }
        free(t);
}

/* Values that do not fit, hex and decimal forms, junk around. */
static void test_tolerance(void) {
        struct smp_mesh_receivers_page p;
        struct smp_mesh_dfd_state st;

        /* blob_addr too large for a u16: the entry is incomplete */
        const char *big = "{\"target_cnt\": 1, \"targets\": { \"0\": { \"blob_addr\": 70000, \"phase\": 2, "
                          "\"status\": 0, \"blob_status\": 0, \"progress\": 1, \"img_idx\": 0 } } }";
        ASSERT_OK(smp_mesh_receivers_page_parse(big, strlen(big), &p));
        ASSERT_EQ(p.n_targets, 0);
        ASSERT_EQ(p.skipped, 1);

        /* 0X upper case, leading zeros, extra keys, no spaces, negative */
        const char *odd = "junk{\"status\":0,\"future\":\"x\",\"phase\":0X1,\"group\":00049153,\"app_idx\":0,"
                          "\"ttl\":5,\"timeout_base\":-1,\"xfer_mode\":2,\"apply\":true,\"slot_idx\":0}tail";
        ASSERT_OK(smp_mesh_dfd_state_parse(odd, strlen(odd), &st));
        ASSERT_EQ(st.phase, 1);
        ASSERT_EQ(st.group, 49153);
        ASSERT_TRUE(!st.has_params);      /* timeout_base -1 does not fit */

        /* a number glued to letters is junk, not 12 */
        const char *glued = "{ \"status\": 12ab, \"phase\": 1 }";
        ASSERT_EQ(smp_mesh_dfd_state_parse(glued, strlen(glued), &st), -EBADMSG);

        /* the last complete status line wins */
        const char *two = "{ \"status\": 0, \"phase\": 1 }\r\n{ \"status\": 7, \"phase\": 4 }\r\n";
        ASSERT_OK(smp_mesh_dfd_state_parse(two, strlen(two), &st));
        ASSERT_EQ(st.status, 7);
        ASSERT_EQ(st.phase, 4);

        /* NUL bytes, deep nesting, unbalanced braces */
        static const char bin[] = "\0{\0\"status\"\0: 0, {{{{{{{{ \"phase\": 3 }}}}}}}}}}}} \"phase\": 2 }";
        ASSERT_EQ(smp_mesh_dfd_state_parse(bin, sizeof(bin) - 1, &st), -EBADMSG);
        static const char nested[] = "{ \"status\": 0, {{{{{{{{ \"x\": 3 }}}}}}}} \"phase\": 2 }";
        ASSERT_OK(smp_mesh_dfd_state_parse(nested, sizeof(nested) - 1, &st));
        ASSERT_EQ(st.phase, 2);

        ASSERT_EQ(smp_mesh_dfd_state_parse(NULL, 3, &st), -EINVAL);
        ASSERT_EQ(smp_mesh_dfd_state_parse("x", 1, NULL), -EINVAL);
}

static void test_capabilities_and_fw_status(void) {
        struct smp_mesh_dfd_capabilities c;
        struct smp_mesh_fw_status fw;
        char *t;

        t = load("capabilities.txt");
        ASSERT_OK(smp_mesh_dfd_capabilities_parse(t, text_len, &c));
        ASSERT_EQ(c.targets_max, 8);
        ASSERT_EQ(c.slot_cnt, 1);
        ASSERT_EQ(c.slot_max_size, 241664);
        ASSERT_TRUE(c.has_slot_space && c.has_remaining_space && c.has_oob_supported);
        ASSERT_EQ(c.remaining_space, 0);
        ASSERT_TRUE(!c.oob_supported);
        free(t);

        t = load("fw-delete-all.txt");
        ASSERT_OK(smp_mesh_fw_status_parse(t, text_len, &fw));
        ASSERT_EQ(fw.status, 0);
        ASSERT_EQ(fw.slot_cnt, 0);
        ASSERT_EQ(fw.idx, 0xffff);
        ASSERT_EQ(fw.fwid_len, 0);
        free(t);
        t = load("fw-delete-all-busy.txt");
        ASSERT_OK(smp_mesh_fw_status_parse(t, text_len, &fw));
        ASSERT_EQ(fw.status, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
        free(t);
        t = load("fw-get.txt");
        ASSERT_OK(smp_mesh_fw_status_parse(t, text_len, &fw));
        ASSERT_EQ(fw.fwid_len, 8);
        ASSERT_MEMEQ(fw.fwid, "\x02\0\0\0\0\0\0\0", 8);
        free(t);
}

/* ---- slot messages ---- */

static void check_slot_add(const char *file, enum smp_mesh_slot_add_outcome outcome, uint32_t size) {
        struct smp_mesh_slot_add_result r;
        char *t = load(file);

        ASSERT_OK(smp_mesh_slot_add_parse(t, text_len, &r));
        ASSERT_EQ(r.outcome, outcome);
        ASSERT_TRUE(r.has_size);
        ASSERT_EQ(r.size, size);
        if (outcome == SMP_MESH_SLOT_ADDED)
                ASSERT_EQ(r.idx, 0);
        free(t);
}

static void test_slot_messages(void) {
        struct smp_mesh_slot_add_result r;
        struct smp_mesh_slot_del_result d;
        char *t;

        check_slot_add("v3.4-slot-add.txt", SMP_MESH_SLOT_ADDED, 241236);         /* "ID: 0" */
        check_slot_add("v3.5-slot-add.txt", SMP_MESH_SLOT_ADDED, 241236);         /* "Index: 0" */
        check_slot_add("ncs-doc-slot-add.txt", SMP_MESH_SLOT_ADDED, 241236);
        check_slot_add("v3.4-slot-add-failed.txt", SMP_MESH_SLOT_FAILED, 241236);
        check_slot_add("v3.5-slot-add-no-slot.txt", SMP_MESH_SLOT_NO_FREE_SLOT, 241236);
        check_slot_add("v3.5-slot-add-commit-failed.txt", SMP_MESH_SLOT_COMMIT_FAILED, 0);
        t = load("v3.5-slot-add-commit-failed.txt");
        ASSERT_OK(smp_mesh_slot_add_parse(t, text_len, &r));
        ASSERT_EQ(r.err, -22);
        free(t);

        const char *idx = "Adding slot (size: 5)\r\nSlot added. Index: 3\r\n";
        ASSERT_OK(smp_mesh_slot_add_parse(idx, strlen(idx), &r));
        ASSERT_EQ(r.idx, 3);
        const char *wrong = "mesh: wrong parameter count\r\n";
        ASSERT_EQ(smp_mesh_slot_add_parse(wrong, strlen(wrong), &r), -EBADMSG);
        const char *noidx = "Slot added. Index: \r\n";
        ASSERT_EQ(smp_mesh_slot_add_parse(noidx, strlen(noidx), &r), -EBADMSG);
        ASSERT_EQ(smp_mesh_slot_add_parse("", 0, &r), -EBADMSG);

        t = load("slot-del.txt");
        ASSERT_OK(smp_mesh_slot_del_parse(t, text_len, &d));
        ASSERT_EQ(d.outcome, SMP_MESH_SLOT_DELETED);
        free(t);
        t = load("slot-del-none.txt");
        ASSERT_OK(smp_mesh_slot_del_parse(t, text_len, &d));
        ASSERT_EQ(d.outcome, SMP_MESH_SLOT_NOT_FOUND);
        free(t);
        t = load("slot-del-all.txt");
        ASSERT_OK(smp_mesh_slot_del_parse(t, text_len, &d));
        ASSERT_EQ(d.outcome, SMP_MESH_SLOT_DELETED);
        free(t);
        t = load("slot-del-all-failed.txt");
        ASSERT_OK(smp_mesh_slot_del_parse(t, text_len, &d));
        ASSERT_EQ(d.outcome, SMP_MESH_SLOT_DELETE_FAILED);
        ASSERT_EQ(d.err, -5);
        free(t);
}

/* ---- encodings ---- */

static void test_fwid(void) {
        struct mcuboot_version v = { .major = 2 }, back;
        uint8_t id[8];
        char hex[17];

        /* The brief's and the NCS documentation's 2.0.0+0. */
        smp_mesh_fwid_from_version(&v, id);
        ASSERT_EQ(smp_mesh_hex(id, sizeof(id), hex, sizeof(hex)), 16);
        ASSERT_STREQ(hex, "0200000000000000");

        /* major u8, minor u8, revision u16 LE, build u32 LE */
        v = (struct mcuboot_version) { .major = 1, .minor = 2, .revision = 0x0304, .build = 0x05060708 };
        smp_mesh_fwid_from_version(&v, id);
        ASSERT_MEMEQ(id, "\x01\x02\x04\x03\x08\x07\x06\x05", 8);
        ASSERT_OK(smp_mesh_fwid_to_version(id, 8, &back));
        ASSERT_EQ(back.revision, 0x0304);
        ASSERT_EQ(back.build, 0x05060708);
        ASSERT_EQ(smp_mesh_fwid_to_version(id, 7, &back), -EINVAL);
        ASSERT_EQ(smp_mesh_hex(id, 8, hex, 16), -ENOBUFS);
}

static void test_metadata(void) {
        uint8_t buf[64], bytes[32];
        char hex[65];
        struct smp_mesh_metadata md;
        int n;

        /* The NCS documentation's encoded example (its text says 241236
         * bytes; the bytes say 0x24cf94 = 2412436). */
        n = smp_mesh_unhex("020000000000000094cf24017c26f3710100", 36, bytes, sizeof(bytes));
        ASSERT_EQ(n, 18);
        ASSERT_OK(smp_mesh_metadata_decode(bytes, (size_t) n, &md));
        ASSERT_EQ(md.version.major, 2);
        ASSERT_EQ(md.size, 2412436);
        ASSERT_EQ(md.core_type, SMP_MESH_CORE_APP);
        ASSERT_TRUE(md.has_composition);
        ASSERT_EQ(md.comp_hash, 0x71f3267c);
        ASSERT_EQ(md.elements, 1);
        ASSERT_EQ(md.user_data_len, 0);
        n = smp_mesh_metadata_encode(&md, buf, sizeof(buf));
        ASSERT_EQ(n, 18);
        ASSERT_OK(smp_mesh_hex(buf, (size_t) n, hex, sizeof(hex)));
        ASSERT_STREQ(hex, "020000000000000094cf24017c26f3710100");

        /* From imgtool's 1.2.3+4 image (3552 bytes), application core,
         * composition hash 0x71f3267c, one element, by hand:
         * 01 02 0300 04000000 | e00d00 | 01 | 7c26f371 | 0100 */
        const char *dir = getenv("SMPGW_TEST_DATA");
        char path[4096];
        snprintf(path, sizeof(path), "%s/imgtool-unsigned.bin", dir);
        struct mcuboot_image *img;
        ASSERT_OK(mcuboot_image_load_file(path, &img, NULL));
        const struct smp_mesh_composition comp = { .hash = 0x71f3267c, .elements = 1 };
        ASSERT_OK(smp_mesh_metadata_from_image(img, SMP_MESH_CORE_APP, &comp, &md));
        n = smp_mesh_metadata_encode(&md, buf, sizeof(buf));
        ASSERT_EQ(n, 18);
        ASSERT_OK(smp_mesh_hex(buf, (size_t) n, hex, sizeof(hex)));
        ASSERT_STREQ(hex, "01020300040000" "00e00d00017c26f3710100");
        /* without composition, for a network core: 12 bytes */
        ASSERT_OK(smp_mesh_metadata_from_image(img, SMP_MESH_CORE_NETWORK, NULL, &md));
        ASSERT_EQ(smp_mesh_metadata_encode(&md, buf, sizeof(buf)), 12);
        ASSERT_EQ(buf[11], SMP_MESH_CORE_NETWORK);
        mcuboot_image_free(img);

        /* user data follows; a short buffer; refusals */
        md = (struct smp_mesh_metadata) { .size = 1, .core_type = SMP_MESH_CORE_APP_SPECIFIC_BLOB,
                                          .user_data = (const uint8_t *) "\xaa\xbb", .user_data_len = 2 };
        ASSERT_EQ(smp_mesh_metadata_encode(&md, buf, sizeof(buf)), 14);
        ASSERT_MEMEQ(buf + 12, "\xaa\xbb", 2);
        ASSERT_OK(smp_mesh_metadata_decode(buf, 14, &md));
        ASSERT_EQ(md.user_data_len, 2);
        ASSERT_TRUE(md.user_data == buf + 12);
        ASSERT_EQ(smp_mesh_metadata_encode(&md, buf, 13), -ENOBUFS);
        md.size = 0x1000000;
        ASSERT_EQ(smp_mesh_metadata_encode(&md, buf, sizeof(buf)), -EFBIG);
        md = (struct smp_mesh_metadata) { .core_type = SMP_MESH_CORE_APP };      /* no composition */
        ASSERT_EQ(smp_mesh_metadata_encode(&md, buf, sizeof(buf)), -EINVAL);
        ASSERT_EQ(smp_mesh_metadata_decode(bytes, 17, &md), -EBADMSG);           /* app without hash */
        ASSERT_EQ(smp_mesh_metadata_decode(bytes, 11, &md), -EBADMSG);

        ASSERT_EQ(smp_mesh_unhex("0g", 2, buf, 1), -EINVAL);
        ASSERT_EQ(smp_mesh_unhex("012", 3, buf, 2), -EINVAL);
        ASSERT_EQ(smp_mesh_unhex("0102", 4, buf, 1), -ENOBUFS);
        ASSERT_EQ(smp_mesh_unhex("AbCd", 4, buf, 2), 2);
        ASSERT_MEMEQ(buf, "\xab\xcd", 2);
}

/* ---- command lines ---- */

static void test_commands(void) {
        char line[300];
        const uint8_t fwid[8] = { 2 };
        const uint8_t md[18] = { 2, [8] = 0x54, 0xae, 0x03, 1 };

        ASSERT_EQ(smp_mesh_slot_add_cmd(241236, fwid, 8, NULL, 0, line, sizeof(line)),
                  (int) strlen("mesh models dfu slot add 241236 0200000000000000"));
        ASSERT_STREQ(line, "mesh models dfu slot add 241236 0200000000000000");
        ASSERT_OK(smp_mesh_slot_add_cmd(241236, fwid, 8, md, sizeof(md), line, sizeof(line)));
        ASSERT_STREQ(line, "mesh models dfu slot add 241236 0200000000000000 02000000000000005"
                           "4ae0301000000000000");
        ASSERT_EQ(smp_mesh_slot_add_cmd(1, fwid, 0, NULL, 0, line, sizeof(line)), -EINVAL);
        ASSERT_EQ(smp_mesh_slot_add_cmd(1, fwid, 8, NULL, 0, line, 10), -ENOBUFS);

        const struct smp_mesh_dfd_start_params sp = {
                .app_idx = 0, .slot_idx = 0, .group = 0xc001, .apply = false,
                .ttl = SMP_MESH_TTL_DEFAULT, .timeout_base = 10, .xfer_mode = SMP_MESH_XFER_MODE_PUSH,
        };
        ASSERT_OK(smp_mesh_dfd_start_cmd(&sp, line, sizeof(line)));
        ASSERT_STREQ(line, "mesh models dfd start 0 0 0xc001 false 255 10 1");
        struct smp_mesh_dfd_start_params bad = sp;
        bad.group = 0x0100;                     /* a unicast address is no group */
        ASSERT_EQ(smp_mesh_dfd_start_cmd(&bad, line, sizeof(line)), -EINVAL);
        bad = sp;
        bad.xfer_mode = 3;
        ASSERT_EQ(smp_mesh_dfd_start_cmd(&bad, line, sizeof(line)), -EINVAL);

        ASSERT_OK(smp_mesh_receivers_get_cmd(8, 4, line, sizeof(line)));
        ASSERT_STREQ(line, "mesh models dfd receivers-get 8 4");
}

static void test_receivers_add_split(void) {
        struct smp_mesh_receiver r[40];
        char **lines;
        size_t n;

        for (unsigned i = 0; i < ELEMENTSOF(r); i++)
                r[i] = (struct smp_mesh_receiver) { .addr = (uint16_t) (0x0100 + i), .img_idx = (uint8_t) (i % 2) };

        ASSERT_OK(smp_mesh_receivers_add_cmds(r, 2, 0, &lines, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(lines[0], "mesh models dfd receivers-add 0x0100,0;0x0101,1");
        ASSERT_TRUE(lines[1] == NULL);
        smp_strv_free(lines);

        /* 40 receivers of 8 or 9 characters after the 30 of the command:
         * with the default buffer a line holds at most 255 characters. */
        ASSERT_OK(smp_mesh_receivers_add_cmds(r, ELEMENTSOF(r), 0, &lines, &n));
        ASSERT_TRUE(n >= 2);
        size_t seen = 0;
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(lines[i]);
                ASSERT_TRUE(len <= 255);
                ASSERT_TRUE(strncmp(lines[i], "mesh models dfd receivers-add ", 30) == 0);
                /* a line ends where the next receiver would not fit */
                if (i + 1 < n)
                        ASSERT_TRUE(len + 9 > 255);
                char **argv;
                size_t argc;
                ASSERT_OK(smp_shell_split(lines[i], &argv, &argc));
                ASSERT_EQ(argc, 5);
                for (char *tok = strtok(argv[4], ";"); tok; tok = strtok(NULL, ";")) {
                        unsigned addr, img;
                        ASSERT_EQ(sscanf(tok, "0x%x,%u", &addr, &img), 2);
                        ASSERT_EQ(addr, r[seen].addr);
                        ASSERT_EQ(img, r[seen].img_idx);
                        seen++;
                }
                smp_strv_free(argv);
        }
        ASSERT_EQ(seen, ELEMENTSOF(r));
        smp_strv_free(lines);

        /* A tiny shell buffer: one receiver per line, or none fits. */
        ASSERT_OK(smp_mesh_receivers_add_cmds(r, 3, 40, &lines, &n));
        ASSERT_EQ(n, 3);
        ASSERT_STREQ(lines[2], "mesh models dfd receivers-add 0x0102,0");
        smp_strv_free(lines);
        ASSERT_EQ(smp_mesh_receivers_add_cmds(r, 3, 38, &lines, &n), -E2BIG);

        struct smp_mesh_receiver group = { .addr = 0xc000 };
        ASSERT_EQ(smp_mesh_receivers_add_cmds(&group, 1, 0, &lines, &n), -EINVAL);
        ASSERT_EQ(smp_mesh_receivers_add_cmds(r, 0, 0, &lines, &n), -EINVAL);
}

static void test_names(void) {
        ASSERT_STREQ(smp_mesh_dfd_phase_to_string(SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED), "transfer-suspended");
        ASSERT_STREQ(smp_mesh_dfu_phase_to_string(SMP_MESH_DFU_PHASE_UNKNOWN), "unknown");
        ASSERT_STREQ(smp_mesh_dfu_status_to_string(SMP_MESH_DFU_ERR_BLOB_XFER_BUSY), "blob-transfer-busy");
        ASSERT_TRUE(smp_mesh_dfd_phase_to_string(8) == NULL);
        ASSERT_TRUE(smp_mesh_dfd_status_to_string(14) == NULL);
        ASSERT_TRUE(smp_mesh_dfu_phase_to_string(11) == NULL);
        ASSERT_TRUE(smp_mesh_addr_is_unicast(1) && smp_mesh_addr_is_unicast(0x7fff));
        ASSERT_TRUE(!smp_mesh_addr_is_unicast(0) && !smp_mesh_addr_is_unicast(0x8000));
}

TEST_MAIN(TEST(test_dfd_state),
          TEST(test_dfd_state_truncated),
          TEST(test_receivers_status),
          TEST(test_receivers_pages),
          TEST(test_receivers_page_every_cut),
          TEST(test_tolerance),
          TEST(test_capabilities_and_fw_status),
          TEST(test_slot_messages),
          TEST(test_fwid),
          TEST(test_metadata),
          TEST(test_commands),
          TEST(test_receivers_add_split),
          TEST(test_names))
