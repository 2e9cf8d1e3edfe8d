/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shell management group (9) bodies, assembled by hand from Zephyr's
 * smp_group_9.rst and grp/shell_mgmt/src/shell_mgmt.c (request
 * {"argv": [...]}, answer {"o", "ret"} or the legacy {"o", "rc"} of
 * CONFIG_MCUMGR_GRP_SHELL_LEGACY_RC_RETURN_CODE; group errors from
 * shell_mgmt.h), the line length rule of shell_mgmt_exec() and the
 * group's error names and legacy translation.
 */
#include <errno.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-shell.h"
#include "test-util.h"

struct vec {
        uint8_t *p;
        size_t n;
};

static struct vec vec_hex(const char *hex) {
        static uint8_t tmp[4096];
        struct vec v;

        v.n = test_hex(hex, tmp, sizeof(tmp));
        v.p = malloc(v.n ? v.n : 1);
        ASSERT_TRUE(v.p);
        memcpy(v.p, tmp, v.n);
        return v;
}

/* {"argv": ["mesh", "models", "dfd", "get"]}, definite (what we send):
 *   A1 64 "argv" 84 64 "mesh" 66 "models" 63 "dfd" 63 "get" */
#define REQ_DFD_GET "a1 64 61 72 67 76 84 64 6d 65 73 68 66 6d 6f 64 65 6c 73 63 64 66 64 63 67 65 74"

static void test_exec_req(void) {
        const struct smp_cbor_slice argv[] = {
                SMP_CBOR_SLICE_LIT("mesh"), SMP_CBOR_SLICE_LIT("models"),
                SMP_CBOR_SLICE_LIT("dfd"), SMP_CBOR_SLICE_LIT("get"),
        };
        struct vec v = vec_hex(REQ_DFD_GET);
        struct smp_cbor_writer w;
        struct smp_shell_exec_req req;
        struct smp_cbor_error err;
        uint8_t out[128];

        smp_cbor_writer_init(&w, out, sizeof(out));
        ASSERT_OK(smp_shell_exec_req_encode(&w, argv, 4));
        ASSERT_EQ(smp_cbor_writer_finish(&w), (int) v.n);
        ASSERT_MEMEQ(out, v.p, v.n);

        ASSERT_OK(smp_shell_exec_req_decode(v.p, v.n, &req, &err));
        ASSERT_EQ(req.argc, 4);
        ASSERT_TRUE(smp_cbor_slice_eq(req.argv[3], "get"));
        ASSERT_EQ(smp_shell_line_len(req.argv, req.argc), strlen("mesh models dfd get"));
        smp_shell_exec_req_done(&req);
        free(v.p);

        /* zcbor style, with an unknown key first: BF 61 "x" 01 64 "argv" 9F 61 "a" FF FF */
        v = vec_hex("bf 61 78 01 64 61 72 67 76 9f 61 61 ff ff");
        ASSERT_OK(smp_shell_exec_req_decode(v.p, v.n, &req, &err));
        ASSERT_EQ(req.argc, 1);
        smp_shell_exec_req_done(&req);
        free(v.p);

        /* An empty argv decodes (the device answers SHELL_EMPTY_COMMAND). */
        v = vec_hex("a1 64 61 72 67 76 80");
        ASSERT_OK(smp_shell_exec_req_decode(v.p, v.n, &req, &err));
        ASSERT_EQ(req.argc, 0);
        smp_shell_exec_req_done(&req);
        free(v.p);

        /* A number among the arguments; no argv. */
        v = vec_hex("a1 64 61 72 67 76 82 61 61 05");
        ASSERT_EQ(smp_shell_exec_req_decode(v.p, v.n, &req, &err), -EBADMSG);
        free(v.p);
        v = vec_hex("a0");
        ASSERT_EQ(smp_shell_exec_req_decode(v.p, v.n, &req, &err), -ENOENT);
        free(v.p);

        smp_cbor_writer_init(&w, out, sizeof(out));
        ASSERT_EQ(smp_shell_exec_req_encode(&w, argv, 0), -EINVAL);
}

static void test_exec_rsp(void) {
        struct smp_shell_exec_rsp rsp;
        struct smp_cbor_error err;
        struct smp_cbor_writer w;
        uint8_t out[128];
        struct vec v;

        /* zcbor: BF 61 "o" 6B "Slot added." 63 "ret" 00 FF */
        v = vec_hex("bf 61 6f 6b 53 6c 6f 74 20 61 64 64 65 64 2e 63 72 65 74 00 ff");
        ASSERT_OK(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(rsp.output, "Slot added."));
        ASSERT_EQ(rsp.ret, 0);
        ASSERT_TRUE(rsp.has_ret && !rsp.legacy_rc);
        free(v.p);

        /* the command failed: "ret": -22 (0x35 = -1 - 21) */
        v = vec_hex("bf 61 6f 60 63 72 65 74 35 ff");
        ASSERT_OK(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_EQ(rsp.ret, -22);
        ASSERT_EQ(rsp.output.len, 0);
        free(v.p);

        /* legacy: BF 61 "o" 61 "x" 62 "rc" 3B 00..1B (-28, -ENOSPC) FF: the
         * command's result, not an SMP error */
        v = vec_hex("bf 61 6f 61 78 62 72 63 38 1b ff");
        ASSERT_OK(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_EQ(rsp.ret, -28);
        ASSERT_TRUE(rsp.legacy_rc);
        free(v.p);

        /* v2 group error SHELL_COMMAND_TOO_LONG:
         * BF 63 "err" BF 65 "group" 09 62 "rc" 02 FF FF */
        v = vec_hex("bf 63 65 72 72 bf 65 67 72 6f 75 70 09 62 72 63 02 ff ff");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -EREMOTEIO);
        ASSERT_TRUE(strstr(err.message, "SHELL_COMMAND_TOO_LONG"));
        struct smp_status st;
        ASSERT_OK(smp_status_decode(v.p, v.n, &st, NULL));
        ASSERT_EQ(smp_status_to_errno(&st), -EINVAL);
        free(v.p);

        /* v1: {"rc": 8} (ENOTSUP: no shell management on the device) */
        v = vec_hex("a1 62 72 63 08");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -EREMOTEIO);
        free(v.p);
        /* {"rc": 0} without "o", {"ret": 0} without "o" */
        v = vec_hex("a1 62 72 63 00");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -ENOENT);
        free(v.p);
        v = vec_hex("a1 63 72 65 74 00");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -ENOENT);
        free(v.p);
        /* "o" and "ret" and an SMP-level "rc" != 0 */
        v = vec_hex("a3 61 6f 60 63 72 65 74 00 62 72 63 02");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -EREMOTEIO);
        free(v.p);
        /* "o" not text */
        v = vec_hex("a1 61 6f 01");
        ASSERT_EQ(smp_shell_exec_rsp_decode(v.p, v.n, &rsp, &err), -EBADMSG);
        free(v.p);

        /* Encoding both shapes. */
        rsp = (struct smp_shell_exec_rsp) { .output = SMP_CBOR_SLICE_LIT("x"), .ret = -28 };
        smp_cbor_writer_init(&w, out, sizeof(out));
        ASSERT_OK(smp_shell_exec_rsp_encode(&w, &rsp));
        v = vec_hex("a2 61 6f 61 78 63 72 65 74 38 1b");
        ASSERT_EQ(smp_cbor_writer_finish(&w), (int) v.n);
        ASSERT_MEMEQ(out, v.p, v.n);
        free(v.p);
        rsp.legacy_rc = true;
        smp_cbor_writer_init(&w, out, sizeof(out));
        w.indefinite = true;
        ASSERT_OK(smp_shell_exec_rsp_encode(&w, &rsp));
        v = vec_hex("bf 61 6f 61 78 62 72 63 38 1b ff");
        ASSERT_EQ(smp_cbor_writer_finish(&w), (int) v.n);
        ASSERT_MEMEQ(out, v.p, v.n);
        free(v.p);
}

/* shell_mgmt_exec(): `len + value.len >= CONFIG_SHELL_CMD_BUFF_SIZE`
 * refuses, len counting the previous arguments and a space after each:
 * the longest line is the buffer size minus one. */
static void test_line_length(void) {
        char arg[256];
        memset(arg, 'a', sizeof(arg));
        /* "mesh models dfd receivers-add " is 30 characters */
        struct smp_cbor_slice argv[] = {
                SMP_CBOR_SLICE_LIT("mesh"), SMP_CBOR_SLICE_LIT("models"),
                SMP_CBOR_SLICE_LIT("dfd"), SMP_CBOR_SLICE_LIT("receivers-add"),
                smp_cbor_slice_make(arg, 225),
        };
        ASSERT_EQ(smp_shell_line_len(argv, 5), 255);
        ASSERT_TRUE(smp_shell_line_fits(255, 0));
        ASSERT_TRUE(smp_shell_line_fits(255, 256));
        argv[4].len = 226;
        ASSERT_EQ(smp_shell_line_len(argv, 5), 256);
        ASSERT_TRUE(!smp_shell_line_fits(256, 256));
        ASSERT_TRUE(smp_shell_line_fits(256, 512));
        ASSERT_EQ(smp_shell_line_len(argv, 0), 0);
}

static void test_split(void) {
        char **argv;
        size_t argc;

        ASSERT_OK(smp_shell_split("  mesh models\tdfd  get ", &argv, &argc));
        ASSERT_EQ(argc, 4);
        ASSERT_STREQ(argv[0], "mesh");
        ASSERT_STREQ(argv[3], "get");
        ASSERT_TRUE(argv[4] == NULL);
        smp_strv_free(argv);
        ASSERT_EQ(smp_shell_split(" \t ", &argv, &argc), -EINVAL);
        ASSERT_EQ(smp_shell_split(NULL, &argv, &argc), -EINVAL);

        char many[200] = "";
        for (int i = 0; i < 65; i++)
                strcat(many, "a ");
        ASSERT_EQ(smp_shell_split(many, &argv, &argc), -E2BIG);
}

static void test_error_table(void) {
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_SHELL, SMP_SHELL_ERR_COMMAND_TOO_LONG), "SHELL_COMMAND_TOO_LONG");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_SHELL, SMP_SHELL_ERR_EMPTY_COMMAND), "SHELL_EMPTY_COMMAND");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_SHELL, SMP_SHELL_ERR_UNKNOWN), "SHELL_UNKNOWN");
        ASSERT_TRUE(smp_group_err_name(SMP_GROUP_SHELL, 4) == NULL);
        /* shell_mgmt_translate_error_code() */
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_SHELL, SMP_SHELL_ERR_COMMAND_TOO_LONG), SMP_MGMT_ERR_EINVAL);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_SHELL, SMP_SHELL_ERR_EMPTY_COMMAND), SMP_MGMT_ERR_EINVAL);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_SHELL, SMP_SHELL_ERR_UNKNOWN), SMP_MGMT_ERR_EUNKNOWN);

        char line[160];
        struct smp_status s = { .has_err = true, .err_group = SMP_GROUP_SHELL, .err_rc = 2 };
        ASSERT_TRUE(smp_status_format(&s, line, sizeof(line)) > 0);
        ASSERT_STREQ(line, "SHELL_COMMAND_TOO_LONG: the command line does not fit the device's shell buffer "
                           "(group 9, rc 2)");
}

TEST_MAIN(TEST(test_exec_req),
          TEST(test_exec_rsp),
          TEST(test_line_length),
          TEST(test_split),
          TEST(test_error_table))
