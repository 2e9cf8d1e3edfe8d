/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Typed SMP bodies (OS, image, stat groups), result codes and upload chunk
 * sizing.  Every byte vector is assembled by hand, with a comment per
 * field, from the shapes in Zephyr's doc/services/device_mgmt/smp_groups/
 * smp_group_{0,1,2}.rst and protocol.md sections 1-4 (examples there are
 * quoted as such).  Vectors marked "zcbor style" use indefinite-length maps
 * and arrays (0xBF/0x9F ... 0xFF) as Zephyr's zcbor writes them unless
 * CONFIG_ZCBOR_CANONICAL is set (zcbor src/zcbor_encode.c; Zephyr
 * modules/zcbor/Kconfig: the option has no default, and
 * subsys/mgmt/mcumgr/Kconfig selects ZCBOR but not ZCBOR_CANONICAL).
 * Our encoders are checked against these vectors, never the other way.
 */
#include <errno.h>

#include "smpgw/smp-cbor.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-stat.h"
#include "test-util.h"

/* Exactly sized heap copy of a hex vector, so ASan flags any over-read. */
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

static void vec_free(struct vec *v) {
        free(v->p);
        v->p = NULL;
}

/* Encodes with fn into a buffer and compares to the hex vector. */
#define ASSERT_ENCODES(hex, indef, call)                                       \
        do {                                                                   \
                uint8_t _out[4096];                                            \
                struct smp_cbor_writer w;                                      \
                struct vec _v = vec_hex(hex);                                  \
                smp_cbor_writer_init(&w, _out, sizeof(_out));                  \
                w.indefinite = (indef);                                        \
                ASSERT_OK(call);                                               \
                ASSERT_EQ(smp_cbor_writer_finish(&w), (int) _v.n);             \
                ASSERT_MEMEQ(_out, _v.p, _v.n);                                \
                vec_free(&_v);                                                 \
        } while (0)

/* Hex of 32 equal bytes, for hashes. */
#define H32(b) b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b

static struct smp_cbor_error err;

/* ------------------------------------------------------------------ */
/* OS group                                                            */

static void test_echo_protocol_md_example(void) {
        /* protocol.md §1: "v2 echo "hi", seq 0x42:
         * 0A 00 00 06 00 00 42 00 + A1 61 64 62 68 69 ({"d":"hi"})". */
        struct vec v = vec_hex("0a 00 00 06 00 00 42 00 a1 61 64 62 68 69");
        struct smp_header h;
        struct smp_cbor_slice text;
        uint8_t body[16], frame[32];
        struct smp_cbor_writer w;

        ASSERT_OK(smp_header_decode(v.p, v.n, &h));
        ASSERT_EQ(h.len, 6);
        ASSERT_EQ(h.group, SMP_GROUP_OS);
        ASSERT_EQ(h.id, SMP_OS_CMD_ECHO);
        ASSERT_OK(smp_os_echo_req_decode(v.p + 8, h.len, &text, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(text, "hi"));

        /* And back: encoder + frame builder reproduce the example. */
        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_os_echo_req_encode(&w, SMP_CBOR_SLICE_LIT("hi")));
        ASSERT_EQ(smp_frame_build(&h, body, w.len, frame, sizeof(frame)), (int) v.n);
        ASSERT_MEMEQ(frame, v.p, v.n);
        vec_free(&v);
}

static void test_echo_rsp(void) {
        struct smp_cbor_slice text;
        /* zcbor style {"r": "hi"}: BF 61 72 62 68 69 FF */
        struct vec v = vec_hex("bf 61 72 62 68 69 ff");

        ASSERT_OK(smp_os_echo_rsp_decode(v.p, v.n, &text, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(text, "hi"));
        ASSERT_ENCODES("bf 61 72 62 68 69 ff", true, smp_os_echo_rsp_encode(&w, SMP_CBOR_SLICE_LIT("hi")));
        ASSERT_ENCODES("a1 61 72 62 68 69", false, smp_os_echo_rsp_encode(&w, SMP_CBOR_SLICE_LIT("hi")));
        /* An echo request body is not a valid response ("r" missing). */
        vec_free(&v);
        v = vec_hex("a1 61 64 62 68 69");
        ASSERT_EQ(smp_os_echo_rsp_decode(v.p, v.n, &text, &err), -ENOENT);
        ASSERT_STREQ(err.message, "field 'r' is missing");
        vec_free(&v);
        /* {"r": 5}: wrong type. */
        v = vec_hex("a1 61 72 05");
        ASSERT_EQ(smp_os_echo_rsp_decode(v.p, v.n, &text, &err), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'r': expected text string, got unsigned integer");
        vec_free(&v);
}

/* mcumgr params with Zephyr's defaults (protocol.md §2: buf_size 384,
 * buf_count 4), zcbor style:
 *   BF
 *     68 62 75 66 5F 73 69 7A 65        "buf_size"
 *     19 01 80                          384
 *     69 62 75 66 5F 63 6F 75 6E 74     "buf_count"
 *     04                                4
 *   FF */
#define PARAMS_ZCBOR "bf 68 62 75 66 5f 73 69 7a 65 19 01 80 69 62 75 66 5f 63 6f 75 6e 74 04 ff"

static void test_params(void) {
        struct smp_os_params_rsp p;
        struct vec v = vec_hex(PARAMS_ZCBOR);

        ASSERT_OK(smp_os_params_rsp_decode(v.p, v.n, &p, &err));
        ASSERT_EQ(p.buf_size, 384);
        ASSERT_EQ(p.buf_count, 4);
        ASSERT_ENCODES(PARAMS_ZCBOR, true,
                       smp_os_params_rsp_encode(&w, &(struct smp_os_params_rsp) { 384, 4 }));
        vec_free(&v);
        /* {"buf_size": 384} only: buf_count missing. */
        v = vec_hex("a1 68 62 75 66 5f 73 69 7a 65 19 01 80");
        ASSERT_EQ(smp_os_params_rsp_decode(v.p, v.n, &p, &err), -ENOENT);
        vec_free(&v);
}

static void test_reset(void) {
        struct smp_os_reset_req r;
        struct vec v;

        /* {} */
        ASSERT_ENCODES("a0", false, smp_os_reset_req_encode(&w, &(struct smp_os_reset_req) { 0 }));
        /* {"force": true}: A1 65 66 6F 72 63 65 F5 */
        ASSERT_ENCODES("a1 65 66 6f 72 63 65 f5", false,
                       smp_os_reset_req_encode(&w, &(struct smp_os_reset_req) { .force = true }));
        /* {"force": true, "boot_mode": 1}: ... 69 "boot_mode" 01 */
        ASSERT_ENCODES("a2 65 66 6f 72 63 65 f5 69 62 6f 6f 74 5f 6d 6f 64 65 01", false,
                       smp_os_reset_req_encode(&w, &(struct smp_os_reset_req) {
                                                           .force = true, .has_boot_mode = true, .boot_mode = 1 }));

        /* Decode: the documented int form {"force": 1} and Zephyr's bool. */
        v = vec_hex("a1 65 66 6f 72 63 65 01");
        ASSERT_OK(smp_os_reset_req_decode(v.p, v.n, &r, &err));
        ASSERT_TRUE(r.force && !r.has_boot_mode);
        vec_free(&v);
        v = vec_hex("a1 65 66 6f 72 63 65 00");
        ASSERT_OK(smp_os_reset_req_decode(v.p, v.n, &r, &err));
        ASSERT_TRUE(!r.force);
        vec_free(&v);
        v = vec_hex("bf 65 66 6f 72 63 65 f5 69 62 6f 6f 74 5f 6d 6f 64 65 01 ff");
        ASSERT_OK(smp_os_reset_req_decode(v.p, v.n, &r, &err));
        ASSERT_TRUE(r.force && r.has_boot_mode && r.boot_mode == 1);
        vec_free(&v);
        v = vec_hex("a0");
        ASSERT_OK(smp_os_reset_req_decode(v.p, v.n, &r, &err));
        ASSERT_TRUE(!r.force && !r.has_boot_mode);
        vec_free(&v);
        /* {"force": "y"} */
        v = vec_hex("a1 65 66 6f 72 63 65 61 79");
        ASSERT_EQ(smp_os_reset_req_decode(v.p, v.n, &r, &err), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'force': expected boolean, got text string");
        vec_free(&v);
}

/* Task statistics (smp_group_0.rst response shape), zcbor style:
 *   BF 65 "tasks" BF
 *     64 "idle" BF
 *       64 "prio" 0F              15
 *       63 "tid" 01
 *       65 "state" 01
 *       66 "stkuse" 18 30         48
 *       66 "stksiz" 19 01 00      256
 *       66 "cswcnt" 18 64         100
 *       67 "runtime" 00
 *       6C "last_checkin" 00
 *       6C "next_checkin" 00
 *     FF
 *     64 "main" BF 64 "prio" 20 FF   prio -1, the rest left out
 *   FF FF */
#define TASKSTAT_ZCBOR                                                               \
        "bf 65 74 61 73 6b 73 bf"                                                    \
        " 64 69 64 6c 65 bf"                                                         \
        "  64 70 72 69 6f 0f 63 74 69 64 01 65 73 74 61 74 65 01"                    \
        "  66 73 74 6b 75 73 65 18 30 66 73 74 6b 73 69 7a 19 01 00"                 \
        "  66 63 73 77 63 6e 74 18 64 67 72 75 6e 74 69 6d 65 00"                    \
        "  6c 6c 61 73 74 5f 63 68 65 63 6b 69 6e 00"                                \
        "  6c 6e 65 78 74 5f 63 68 65 63 6b 69 6e 00"                                \
        " ff"                                                                        \
        " 64 6d 61 69 6e bf 64 70 72 69 6f 20 ff"                                    \
        " ff ff"

static void test_taskstat(void) {
        struct smp_os_taskstat_rsp rsp;
        struct vec v = vec_hex(TASKSTAT_ZCBOR);

        ASSERT_OK(smp_os_taskstat_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_EQ(rsp.n_tasks, 2);
        ASSERT_TRUE(smp_cbor_slice_eq(rsp.tasks[0].name, "idle"));
        ASSERT_EQ(rsp.tasks[0].prio, 15);
        ASSERT_EQ(rsp.tasks[0].tid, 1);
        ASSERT_EQ(rsp.tasks[0].stkuse, 48);
        ASSERT_EQ(rsp.tasks[0].stksiz, 256);
        ASSERT_EQ(rsp.tasks[0].cswcnt, 100);
        ASSERT_TRUE(smp_cbor_slice_eq(rsp.tasks[1].name, "main"));
        ASSERT_EQ(rsp.tasks[1].prio, -1);
        ASSERT_EQ(rsp.tasks[1].stksiz, 0);

        /* Round trip through our encoder, both styles. */
        for (int indef = 0; indef <= 1; indef++) {
                uint8_t out[512];
                struct smp_cbor_writer w;
                struct smp_os_taskstat_rsp back;

                smp_cbor_writer_init(&w, out, sizeof(out));
                w.indefinite = indef;
                ASSERT_OK(smp_os_taskstat_rsp_encode(&w, &rsp));
                ASSERT_OK(smp_os_taskstat_rsp_decode(out, w.len, &back, &err));
                ASSERT_EQ(back.n_tasks, 2);
                ASSERT_EQ(back.tasks[1].prio, -1);
                ASSERT_EQ(back.tasks[0].cswcnt, 100);
                smp_os_taskstat_rsp_done(&back);
        }
        smp_os_taskstat_rsp_done(&rsp);
        ASSERT_TRUE(rsp.tasks == NULL && rsp.n_tasks == 0);
        vec_free(&v);

        /* {"tasks": {"x": 1}}: a task that is not a map. */
        v = vec_hex("a1 65 74 61 73 6b 73 a1 61 78 01");
        ASSERT_EQ(smp_os_taskstat_rsp_decode(v.p, v.n, &rsp, &err), -EBADMSG);
        vec_free(&v);
}

static void test_datetime_info_bootloader(void) {
        struct smp_cbor_slice s;
        struct smp_os_bootloader_info_rsp bl;
        struct vec v;

        /* {"datetime": "2024-01-02T03:04:05"}:
         *   A1 68 "datetime" 73 "2024-01-02T03:04:05" (19 bytes) */
#define DATETIME_HEX "a1 68 64 61 74 65 74 69 6d 65 73 32 30 32 34 2d 30 31 2d 30 32 54 30 33 3a 30 34 3a 30 35"
        v = vec_hex(DATETIME_HEX);
        ASSERT_OK(smp_os_datetime_req_decode(v.p, v.n, &s, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(s, "2024-01-02T03:04:05"));
        ASSERT_OK(smp_os_datetime_rsp_decode(v.p, v.n, &s, &err));
        ASSERT_ENCODES(DATETIME_HEX, false, smp_os_datetime_encode(&w, SMP_CBOR_SLICE_LIT("2024-01-02T03:04:05")));
        vec_free(&v);

        /* OS info request {"format": "a"}: A1 66 "format" 61 61; none: A0. */
        ASSERT_ENCODES("a1 66 66 6f 72 6d 61 74 61 61", false,
                       smp_os_info_req_encode(&w, SMP_CBOR_SLICE_LIT("a")));
        ASSERT_ENCODES("a0", false, smp_os_info_req_encode(&w, smp_cbor_slice_str(NULL)));
        v = vec_hex("a0");
        ASSERT_OK(smp_os_info_req_decode(v.p, v.n, &s, &err));
        ASSERT_TRUE(!smp_cbor_slice_present(s));
        vec_free(&v);
        /* Response {"output": "Zephyr"}: A1 66 "output" 66 "Zephyr" */
        v = vec_hex("a1 66 6f 75 74 70 75 74 66 5a 65 70 68 79 72");
        ASSERT_OK(smp_os_info_rsp_decode(v.p, v.n, &s, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(s, "Zephyr"));
        vec_free(&v);

        /* Bootloader info (protocol.md §2, id 8): {"bootloader": "MCUboot"}:
         *   A1 6A "bootloader" 67 "MCUboot" */
        v = vec_hex("a1 6a 62 6f 6f 74 6c 6f 61 64 65 72 67 4d 43 55 62 6f 6f 74");
        ASSERT_OK(smp_os_bootloader_info_rsp_decode(v.p, v.n, &bl, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(bl.bootloader, "MCUboot") && !bl.has_mode);
        vec_free(&v);
        /* {"mode": 1, "no-downgrade": true}: A2 64 "mode" 01 6C "no-downgrade" F5 */
        v = vec_hex("a2 64 6d 6f 64 65 01 6c 6e 6f 2d 64 6f 77 6e 67 72 61 64 65 f5");
        ASSERT_OK(smp_os_bootloader_info_rsp_decode(v.p, v.n, &bl, &err));
        ASSERT_TRUE(bl.has_mode && bl.mode == 1 && bl.no_downgrade);
        ASSERT_ENCODES("a2 64 6d 6f 64 65 01 6c 6e 6f 2d 64 6f 77 6e 67 72 61 64 65 f5", false,
                       smp_os_bootloader_info_rsp_encode(&w, &bl));
        vec_free(&v);
        /* {"query": "mode"}: A1 65 "query" 64 "mode" */
        ASSERT_ENCODES("a1 65 71 75 65 72 79 64 6d 6f 64 65", false,
                       smp_os_bootloader_info_req_encode(&w, SMP_CBOR_SLICE_LIT("mode")));
}

/* ------------------------------------------------------------------ */
/* Image group                                                         */

/* Image list (smp_group_1.rst / protocol.md §4 entry fields), zcbor style,
 * after "test": slot 1 pending.
 *   BF 66 "images" 9F
 *     BF 64 "slot" 00
 *        67 "version" 65 "1.0.0"
 *        64 "hash" 58 20 AA*32
 *        68 "bootable" F5  67 "pending" F4  69 "confirmed" F5
 *        66 "active" F5    69 "permanent" F4
 *     FF
 *     BF 64 "slot" 01
 *        67 "version" 67 "1.1.0.7"
 *        64 "hash" 58 20 BB*32
 *        68 "bootable" F5  67 "pending" F5  69 "confirmed" F4
 *        66 "active" F4    69 "permanent" F4
 *     FF
 *   FF
 *   6B "splitStatus" 00
 * FF */
#define IMAGE_LIST_ZCBOR                                                             \
        "bf 66 69 6d 61 67 65 73 9f"                                                 \
        " bf 64 73 6c 6f 74 00 67 76 65 72 73 69 6f 6e 65 31 2e 30 2e 30"            \
        "  64 68 61 73 68 58 20" H32(" aa")                                          \
        "  68 62 6f 6f 74 61 62 6c 65 f5 67 70 65 6e 64 69 6e 67 f4"                 \
        "  69 63 6f 6e 66 69 72 6d 65 64 f5 66 61 63 74 69 76 65 f5"                 \
        "  69 70 65 72 6d 61 6e 65 6e 74 f4"                                         \
        " ff"                                                                        \
        " bf 64 73 6c 6f 74 01 67 76 65 72 73 69 6f 6e 67 31 2e 31 2e 30 2e 37"      \
        "  64 68 61 73 68 58 20" H32(" bb")                                          \
        "  68 62 6f 6f 74 61 62 6c 65 f5 67 70 65 6e 64 69 6e 67 f5"                 \
        "  69 63 6f 6e 66 69 72 6d 65 64 f4 66 61 63 74 69 76 65 f4"                 \
        "  69 70 65 72 6d 61 6e 65 6e 74 f4"                                         \
        " ff"                                                                        \
        " ff 6b 73 70 6c 69 74 53 74 61 74 75 73 00 ff"

static void test_image_list(void) {
        _cleanup_free_ struct smp_img_state_rsp *rsp = calloc(1, sizeof(*rsp));
        struct vec v = vec_hex(IMAGE_LIST_ZCBOR);
        uint8_t aa[32], bb[32];

        memset(aa, 0xaa, sizeof(aa));
        memset(bb, 0xbb, sizeof(bb));
        ASSERT_OK(smp_img_state_rsp_decode(v.p, v.n, rsp, &err));
        ASSERT_EQ(rsp->n_images, 2);
        ASSERT_TRUE(rsp->has_split_status && rsp->split_status == 0);
        ASSERT_TRUE(!rsp->images[0].has_image && rsp->images[0].image == 0);
        ASSERT_EQ(rsp->images[0].slot, 0);
        ASSERT_TRUE(smp_cbor_slice_eq(rsp->images[0].version, "1.0.0"));
        ASSERT_EQ(rsp->images[0].hash.len, 32);
        ASSERT_MEMEQ(rsp->images[0].hash.ptr, aa, 32);
        ASSERT_TRUE(rsp->images[0].bootable && !rsp->images[0].pending && rsp->images[0].confirmed &&
                    rsp->images[0].active && !rsp->images[0].permanent);
        ASSERT_EQ(rsp->images[1].slot, 1);
        ASSERT_TRUE(smp_cbor_slice_eq(rsp->images[1].version, "1.1.0.7"));
        ASSERT_MEMEQ(rsp->images[1].hash.ptr, bb, 32);
        ASSERT_TRUE(rsp->images[1].bootable && rsp->images[1].pending && !rsp->images[1].confirmed &&
                    !rsp->images[1].active && !rsp->images[1].permanent);

        /* Our encoder, zcbor style, reproduces the vector byte for byte. */
        ASSERT_ENCODES(IMAGE_LIST_ZCBOR, true, smp_img_state_rsp_encode(&w, rsp));
        vec_free(&v);

        /* Frugal build (protocol.md §4: false flags and splitStatus left out):
         *   A1 66 "images" 81 A4 64 "slot" 00 67 "version" 65 "1.0.0"
         *      64 "hash" 58 20 AA*32 66 "active" F5 */
#define IMAGE_LIST_FRUGAL                                                            \
        "a1 66 69 6d 61 67 65 73 81 a4 64 73 6c 6f 74 00"                            \
        " 67 76 65 72 73 69 6f 6e 65 31 2e 30 2e 30 64 68 61 73 68 58 20" H32(" aa") \
        " 66 61 63 74 69 76 65 f5"
        v = vec_hex(IMAGE_LIST_FRUGAL);
        ASSERT_OK(smp_img_state_rsp_decode(v.p, v.n, rsp, &err));
        ASSERT_EQ(rsp->n_images, 1);
        ASSERT_TRUE(!rsp->has_split_status);
        ASSERT_TRUE(rsp->images[0].active && !rsp->images[0].bootable && !rsp->images[0].confirmed &&
                    !rsp->images[0].pending && !rsp->images[0].permanent);
        rsp->frugal = true;
        ASSERT_ENCODES(IMAGE_LIST_FRUGAL, false, smp_img_state_rsp_encode(&w, rsp));
        vec_free(&v);

        /* MCUboot serial recovery style: "image" present, no "hash":
         *   A1 66 "images" 81 A3 65 "image" 00 64 "slot" 00 67 "version" 65 "1.0.0" */
        v = vec_hex("a1 66 69 6d 61 67 65 73 81 a3 65 69 6d 61 67 65 00 64 73 6c 6f 74 00"
                    " 67 76 65 72 73 69 6f 6e 65 31 2e 30 2e 30");
        ASSERT_OK(smp_img_state_rsp_decode(v.p, v.n, rsp, &err));
        ASSERT_TRUE(rsp->images[0].has_image && !smp_cbor_slice_present(rsp->images[0].hash));
        vec_free(&v);

        /* 17 entries: more than SMP_IMG_MAX_IMAGES.  A1 66 "images" 91 A0*17
         * (each empty entry would fail anyway; the count is checked first). */
        v = vec_hex("a1 66 69 6d 61 67 65 73 91 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0 a0");
        ASSERT_EQ(smp_img_state_rsp_decode(v.p, v.n, rsp, &err), -E2BIG);
        vec_free(&v);
        /* Entry without "slot": A1 66 "images" 81 A1 67 "version" 61 "1". */
        v = vec_hex("a1 66 69 6d 61 67 65 73 81 a1 67 76 65 72 73 69 6f 6e 61 31");
        ASSERT_EQ(smp_img_state_rsp_decode(v.p, v.n, rsp, &err), -ENOENT);
        ASSERT_STREQ(err.message, "field 'slot' is missing");
        vec_free(&v);
        /* "hash" of 0 bytes is refused. */
        v = vec_hex("a1 66 69 6d 61 67 65 73 81 a3 64 73 6c 6f 74 00"
                    " 67 76 65 72 73 69 6f 6e 61 31 64 68 61 73 68 40");
        ASSERT_EQ(smp_img_state_rsp_decode(v.p, v.n, rsp, &err), -EBADMSG);
        vec_free(&v);
        /* Flags of the wrong type: "pending": 1. */
        v = vec_hex("a1 66 69 6d 61 67 65 73 81 a3 64 73 6c 6f 74 00"
                    " 67 76 65 72 73 69 6f 6e 61 31 67 70 65 6e 64 69 6e 67 01");
        ASSERT_EQ(smp_img_state_rsp_decode(v.p, v.n, rsp, &err), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'pending': expected boolean, got unsigned integer");
        vec_free(&v);
}

static void test_image_state_write(void) {
        struct smp_img_state_write_req req;
        uint8_t bb[32];
        struct vec v;

        memset(bb, 0xbb, sizeof(bb));
        /* test: {"hash": h'BB*32', "confirm": false}
         *   A2 64 "hash" 58 20 BB*32 67 "confirm" F4 */
#define STATE_TEST_HEX "a2 64 68 61 73 68 58 20" H32(" bb") " 67 63 6f 6e 66 69 72 6d f4"
        ASSERT_ENCODES(STATE_TEST_HEX, false,
                       smp_img_state_write_req_encode(&w, &(struct smp_img_state_write_req) {
                                                                  .hash = smp_cbor_slice_make(bb, 32) }));
        v = vec_hex(STATE_TEST_HEX);
        ASSERT_OK(smp_img_state_write_req_decode(v.p, v.n, &req, &err));
        ASSERT_TRUE(!req.confirm && req.hash.len == 32);
        ASSERT_MEMEQ(req.hash.ptr, bb, 32);
        vec_free(&v);
        /* confirm running image: {"confirm": true}: A1 67 "confirm" F5 */
        ASSERT_ENCODES("a1 67 63 6f 6e 66 69 72 6d f5", false,
                       smp_img_state_write_req_encode(&w, &(struct smp_img_state_write_req) { .confirm = true }));
        v = vec_hex("a1 67 63 6f 6e 66 69 72 6d f5");
        ASSERT_OK(smp_img_state_write_req_decode(v.p, v.n, &req, &err));
        ASSERT_TRUE(req.confirm && !smp_cbor_slice_present(req.hash));
        vec_free(&v);
}

/* First upload chunk (protocol.md §3 fields), key order off, data, len,
 * image, sha, upgrade:
 *   A6
 *     63 "off" 00
 *     64 "data" 44 3D B8 F3 96          the MCUboot magic, LE
 *     63 "len" 1A 00 01 11 70           70000
 *     65 "image" 00
 *     63 "sha" 58 20 CC*32
 *     67 "upgrade" F4 */
#define UPLOAD_FIRST_HEX                                                             \
        "a6 63 6f 66 66 00 64 64 61 74 61 44 3d b8 f3 96"                            \
        " 63 6c 65 6e 1a 00 01 11 70 65 69 6d 61 67 65 00"                           \
        " 63 73 68 61 58 20" H32(" cc") " 67 75 70 67 72 61 64 65 f4"

static void test_upload_req(void) {
        static const uint8_t magic[4] = { 0x3d, 0xb8, 0xf3, 0x96 };
        uint8_t cc[32];
        struct smp_img_upload_req req;
        struct vec v;

        memset(cc, 0xcc, sizeof(cc));
        struct smp_img_upload_req first = {
                .off = 0,
                .data = smp_cbor_slice_make(magic, 4),
                .has_len = true,
                .len = 70000,
                .has_image = true,
                .image = 0,
                .sha = smp_cbor_slice_make(cc, 32),
                .has_upgrade = true,
                .upgrade = false,
        };
        ASSERT_ENCODES(UPLOAD_FIRST_HEX, false, smp_img_upload_req_encode(&w, &first));
        v = vec_hex(UPLOAD_FIRST_HEX);
        ASSERT_OK(smp_img_upload_req_decode(v.p, v.n, &req, &err));
        ASSERT_EQ(req.off, 0);
        ASSERT_EQ(req.data.len, 4);
        ASSERT_MEMEQ(req.data.ptr, magic, 4);
        ASSERT_TRUE(req.has_len && req.len == 70000);
        ASSERT_TRUE(req.has_image && req.image == 0);
        ASSERT_EQ(req.sha.len, 32);
        ASSERT_TRUE(req.has_upgrade && !req.upgrade);
        vec_free(&v);

        /* Later chunk: {"off": 65536, "data": h'010203'}
         *   A2 63 "off" 1A 00 01 00 00 64 "data" 43 01 02 03 */
#define UPLOAD_LATER_HEX "a2 63 6f 66 66 1a 00 01 00 00 64 64 61 74 61 43 01 02 03"
        ASSERT_ENCODES(UPLOAD_LATER_HEX, false,
                       smp_img_upload_req_encode(&w, &(struct smp_img_upload_req) {
                                                             .off = 65536,
                                                             .data = smp_cbor_slice_make("\x01\x02\x03", 3) }));
        v = vec_hex(UPLOAD_LATER_HEX);
        ASSERT_OK(smp_img_upload_req_decode(v.p, v.n, &req, &err));
        ASSERT_TRUE(req.off == 65536 && req.data.len == 3 && !req.has_len && !req.has_image &&
                    !smp_cbor_slice_present(req.sha) && !req.has_upgrade);
        vec_free(&v);

        /* No "off" (Zephyr: IMG_INVALID_OFFSET): {"data": h''}. */
        v = vec_hex("a1 64 64 61 74 61 40");
        ASSERT_EQ(smp_img_upload_req_decode(v.p, v.n, &req, &err), -ENOENT);
        vec_free(&v);
        /* "data" as text: {"off": 0, "data": "x"}. */
        v = vec_hex("a2 63 6f 66 66 00 64 64 61 74 61 61 78");
        ASSERT_EQ(smp_img_upload_req_decode(v.p, v.n, &req, &err), -EBADMSG);
        ASSERT_STREQ(err.message, "field 'data': expected byte string, got text string");
        vec_free(&v);
        /* A sha longer than 32 bytes is not encoded. */
        uint8_t sha33[33] = { 0 };
        uint8_t out[128];
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, out, sizeof(out));
        ASSERT_EQ(smp_img_upload_req_encode(&w, &(struct smp_img_upload_req) { .sha = smp_cbor_slice_make(sha33, 33) }),
                  -EINVAL);
}

static void test_upload_rsp(void) {
        struct smp_img_upload_rsp rsp;
        struct smp_status st;
        char text[160];
        struct vec v;

        /* {"off": 512}: A1 63 "off" 19 02 00 */
        v = vec_hex("a1 63 6f 66 66 19 02 00");
        ASSERT_OK(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_TRUE(rsp.off == 512 && !rsp.has_match);
        ASSERT_ENCODES("a1 63 6f 66 66 19 02 00", false,
                       smp_img_upload_rsp_encode(&w, &(struct smp_img_upload_rsp) { .off = 512 }));
        vec_free(&v);
        /* Last chunk, zcbor style, CONFIG_IMG_ENABLE_IMAGE_CHECK:
         *   BF 63 "off" 1A 00 01 11 70 65 "match" F5 FF */
        v = vec_hex("bf 63 6f 66 66 1a 00 01 11 70 65 6d 61 74 63 68 f5 ff");
        ASSERT_OK(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_TRUE(rsp.off == 70000 && rsp.has_match && rsp.match);
        vec_free(&v);
        /* Legacy rc behaviour: {"rc": 0, "off": 512}: A2 62 "rc" 00 63 "off" 19 02 00 */
        v = vec_hex("a2 62 72 63 00 63 6f 66 66 19 02 00");
        ASSERT_OK(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_EQ(rsp.off, 512);
        vec_free(&v);

        /* v1 error: {"rc": 3, "rsn": "bad"}: A2 62 "rc" 03 63 "rsn" 63 "bad" */
        v = vec_hex("a2 62 72 63 03 63 72 73 6e 63 62 61 64");
        ASSERT_EQ(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err), -EREMOTEIO);
        ASSERT_STREQ(err.message, "device reported an error: EINVAL: invalid request or argument (rc 3): bad");
        ASSERT_OK(smp_status_decode(v.p, v.n, &st, &err));
        ASSERT_TRUE(smp_status_failed(&st) && st.has_rc && st.rc == 3 && !st.has_err);
        ASSERT_TRUE(smp_cbor_slice_eq(st.rsn, "bad"));
        ASSERT_EQ(smp_status_to_errno(&st), -EINVAL);
        vec_free(&v);

        /* v2 error, zcbor style (smp_error_version_2.cddl):
         *   BF 63 "err" BF 65 "group" 01 62 "rc" 09 FF FF
         * = image group, IMG_MGMT_ERR_NO_FREE_SLOT */
        v = vec_hex("bf 63 65 72 72 bf 65 67 72 6f 75 70 01 62 72 63 09 ff ff");
        ASSERT_EQ(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err), -EREMOTEIO);
        ASSERT_OK(smp_status_decode(v.p, v.n, &st, &err));
        ASSERT_TRUE(smp_status_failed(&st) && st.has_err && st.err_group == 1 && st.err_rc == 9);
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "IMG_NO_FREE_SLOT: no free slot to upload the image to (group 1, rc 9)");
        ASSERT_EQ(smp_status_to_errno(&st), -EBADFD); /* legacy EBADSTATE */
        ASSERT_ENCODES("a1 63 65 72 72 a2 65 67 72 6f 75 70 01 62 72 63 09", false,
                       smp_status_encode_v2(&w, 1, 9));
        ASSERT_ENCODES("bf 63 65 72 72 bf 65 67 72 6f 75 70 01 62 72 63 09 ff ff", true,
                       smp_status_encode_v2(&w, 1, 9));
        ASSERT_ENCODES("a2 62 72 63 03 63 72 73 6e 63 62 61 64", false, smp_status_encode_v1(&w, 3, "bad"));
        vec_free(&v);

        /* SMP-layer failure in a v2 reply still comes as top-level rc:
         * {"rc": 8}: A1 62 "rc" 08 (ENOTSUP). */
        v = vec_hex("a1 62 72 63 08");
        ASSERT_OK(smp_status_decode(v.p, v.n, &st, &err));
        ASSERT_TRUE(smp_status_failed(&st));
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "ENOTSUP: command or operation not supported (rc 8)");
        ASSERT_EQ(smp_status_to_errno(&st), -EOPNOTSUPP);
        vec_free(&v);

        /* Malformed "err": {"err": 5} and {"err": {"group": 1}}. */
        v = vec_hex("a1 63 65 72 72 05");
        ASSERT_EQ(smp_status_decode(v.p, v.n, &st, &err), -EBADMSG);
        vec_free(&v);
        v = vec_hex("a1 63 65 72 72 a1 65 67 72 6f 75 70 01");
        ASSERT_EQ(smp_status_decode(v.p, v.n, &st, &err), -ENOENT);
        vec_free(&v);
        /* {"err": {"group": 1, "rc": 0}} is success. */
        v = vec_hex("a1 63 65 72 72 a2 65 67 72 6f 75 70 01 62 72 63 00");
        ASSERT_OK(smp_status_decode(v.p, v.n, &st, &err));
        ASSERT_TRUE(!smp_status_failed(&st));
        ASSERT_EQ(smp_status_to_errno(&st), 0);
        vec_free(&v);
}

static void test_erase_and_slot_info(void) {
        struct smp_img_erase_req e;
        _cleanup_free_ struct smp_img_slot_info_rsp *si = calloc(1, sizeof(*si));
        struct vec v;

        ASSERT_ENCODES("a0", false, smp_img_erase_req_encode(&w, &(struct smp_img_erase_req) { 0 }));
        /* {"slot": 1}: A1 64 "slot" 01 */
        ASSERT_ENCODES("a1 64 73 6c 6f 74 01", false,
                       smp_img_erase_req_encode(&w, &(struct smp_img_erase_req) { true, 1 }));
        v = vec_hex("a1 64 73 6c 6f 74 01");
        ASSERT_OK(smp_img_erase_req_decode(v.p, v.n, &e, &err));
        ASSERT_TRUE(e.has_slot && e.slot == 1);
        vec_free(&v);

        /* Slot info (protocol.md §2, id 6):
         *   A1 66 "images" 81
         *     A3 65 "image" 00
         *        65 "slots" 82
         *          A2 64 "slot" 00 64 "size" 1A 00 04 00 00            256 KiB
         *          A3 64 "slot" 01 64 "size" 1A 00 04 00 00
         *             6F "upload_image_id" 00
         *        6E "max_image_size" 1A 00 03 FF 00                    261888 */
#define SLOT_INFO_HEX                                                                \
        "a1 66 69 6d 61 67 65 73 81 a3 65 69 6d 61 67 65 00 65 73 6c 6f 74 73 82"    \
        " a2 64 73 6c 6f 74 00 64 73 69 7a 65 1a 00 04 00 00"                        \
        " a3 64 73 6c 6f 74 01 64 73 69 7a 65 1a 00 04 00 00"                        \
        "  6f 75 70 6c 6f 61 64 5f 69 6d 61 67 65 5f 69 64 00"                       \
        " 6e 6d 61 78 5f 69 6d 61 67 65 5f 73 69 7a 65 1a 00 03 ff 00"
        v = vec_hex(SLOT_INFO_HEX);
        ASSERT_OK(smp_img_slot_info_rsp_decode(v.p, v.n, si, &err));
        ASSERT_EQ(si->n_images, 1);
        ASSERT_EQ(si->images[0].n_slots, 2);
        ASSERT_EQ(si->images[0].slots[0].size, 262144);
        ASSERT_TRUE(!si->images[0].slots[0].has_upload_image_id);
        ASSERT_TRUE(si->images[0].slots[1].has_upload_image_id && si->images[0].slots[1].upload_image_id == 0);
        ASSERT_TRUE(si->images[0].has_max_image_size && si->images[0].max_image_size == 261888);
        ASSERT_ENCODES(SLOT_INFO_HEX, false, smp_img_slot_info_rsp_encode(&w, si));
        vec_free(&v);

        /* A slot Zephyr's img_mgmt_slot_info() could not open the flash
         * area of: "rc" (here -ENOENT) in place of "size".
         *   A1 66 "images" 81 A2 65 "image" 00 65 "slots" 82
         *     A2 64 "slot" 00 64 "size" 1A 00 04 00 00
         *     A2 64 "slot" 01 62 "rc" 21 */
#define SLOT_INFO_RC_HEX                                                          \
        "a1 66 69 6d 61 67 65 73 81 a2 65 69 6d 61 67 65 00 65 73 6c 6f 74 73 82" \
        " a2 64 73 6c 6f 74 00 64 73 69 7a 65 1a 00 04 00 00"                     \
        " a2 64 73 6c 6f 74 01 62 72 63 21"
        v = vec_hex(SLOT_INFO_RC_HEX);
        ASSERT_OK(smp_img_slot_info_rsp_decode(v.p, v.n, si, &err));
        ASSERT_EQ(si->images[0].n_slots, 2);
        ASSERT_TRUE(!si->images[0].slots[0].has_rc && si->images[0].slots[0].size == 262144);
        ASSERT_TRUE(si->images[0].slots[1].has_rc && si->images[0].slots[1].rc == -2);
        ASSERT_EQ(si->images[0].slots[1].size, 0);
        ASSERT_ENCODES(SLOT_INFO_RC_HEX, false, smp_img_slot_info_rsp_encode(&w, si));
        vec_free(&v);
        /* neither size nor rc: still an error */
        v = vec_hex("a1 66 69 6d 61 67 65 73 81 a2 65 69 6d 61 67 65 00 65 73 6c 6f 74 73 81"
                    " a1 64 73 6c 6f 74 01");
        ASSERT_EQ(smp_img_slot_info_rsp_decode(v.p, v.n, si, &err), -ENOENT);
        vec_free(&v);
}

/* ------------------------------------------------------------------ */
/* Stat group                                                          */

static void test_stat(void) {
        struct smp_cbor_slice name;
        struct smp_stat_read_rsp rd;
        struct smp_stat_list_rsp ls;
        struct vec v;

        /* {"name": "smp_svr_stats"} (smp_group_2.rst; Zephyr's smp_svr
         * sample group): A1 64 "name" 6D "smp_svr_stats" */
#define STAT_NAME_HEX "a1 64 6e 61 6d 65 6d 73 6d 70 5f 73 76 72 5f 73 74 61 74 73"
        ASSERT_ENCODES(STAT_NAME_HEX, false, smp_stat_read_req_encode(&w, SMP_CBOR_SLICE_LIT("smp_svr_stats")));
        v = vec_hex(STAT_NAME_HEX);
        ASSERT_OK(smp_stat_read_req_decode(v.p, v.n, &name, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(name, "smp_svr_stats"));
        vec_free(&v);

        /* zcbor style:
         *   BF 64 "name" 6D "smp_svr_stats" 66 "fields" BF 65 "ticks" 19 04 D2 FF FF */
#define STAT_READ_ZCBOR                                                              \
        "bf 64 6e 61 6d 65 6d 73 6d 70 5f 73 76 72 5f 73 74 61 74 73"                \
        " 66 66 69 65 6c 64 73 bf 65 74 69 63 6b 73 19 04 d2 ff ff"
        v = vec_hex(STAT_READ_ZCBOR);
        ASSERT_OK(smp_stat_read_rsp_decode(v.p, v.n, &rd, &err));
        ASSERT_TRUE(smp_cbor_slice_eq(rd.name, "smp_svr_stats"));
        ASSERT_EQ(rd.n_fields, 1);
        ASSERT_TRUE(smp_cbor_slice_eq(rd.fields[0].name, "ticks"));
        ASSERT_EQ(rd.fields[0].value, 1234);
        ASSERT_ENCODES(STAT_READ_ZCBOR, true, smp_stat_read_rsp_encode(&w, &rd));
        smp_stat_read_rsp_done(&rd);
        vec_free(&v);
        /* A counter that is not a uint: {"name": "a", "fields": {"x": -1}}. */
        v = vec_hex("a2 64 6e 61 6d 65 61 61 66 66 69 65 6c 64 73 a1 61 78 20");
        ASSERT_EQ(smp_stat_read_rsp_decode(v.p, v.n, &rd, &err), -EBADMSG);
        vec_free(&v);

        /* {"stat_list": ["smp_svr_stats", "ble_ll"]}:
         *   A1 69 "stat_list" 82 6D "smp_svr_stats" 66 "ble_ll" */
#define STAT_LIST_HEX                                                                \
        "a1 69 73 74 61 74 5f 6c 69 73 74 82 6d 73 6d 70 5f 73 76 72 5f 73 74 61 74 73" \
        " 66 62 6c 65 5f 6c 6c"
        v = vec_hex(STAT_LIST_HEX);
        ASSERT_OK(smp_stat_list_rsp_decode(v.p, v.n, &ls, &err));
        ASSERT_EQ(ls.n_names, 2);
        ASSERT_TRUE(smp_cbor_slice_eq(ls.names[1], "ble_ll"));
        ASSERT_ENCODES(STAT_LIST_HEX, false, smp_stat_list_rsp_encode(&w, &ls));
        smp_stat_list_rsp_done(&ls);
        vec_free(&v);
        /* Error reply of an unknown group, v2: {"err": {"group": 2, "rc": 2}}. */
        v = vec_hex("a1 63 65 72 72 a2 65 67 72 6f 75 70 02 62 72 63 02");
        ASSERT_EQ(smp_stat_read_rsp_decode(v.p, v.n, &rd, &err), -EREMOTEIO);
        ASSERT_TRUE(strstr(err.message, "STAT_INVALID_GROUP") != NULL);
        vec_free(&v);
}

/* ------------------------------------------------------------------ */
/* Names, legacy mapping                                               */

static void test_error_names(void) {
        struct smp_status st = { 0 };
        char text[160];

        for (int64_t rc = 0; rc <= 13; rc++) {
                ASSERT_TRUE(smp_mgmt_err_name(rc) != NULL);
                ASSERT_TRUE(smp_mgmt_err_message(rc) != NULL);
        }
        ASSERT_STREQ(smp_mgmt_err_name(5), "ENOENT");
        ASSERT_STREQ(smp_mgmt_err_name(13), "UNSUPPORTED_TOO_NEW");
        ASSERT_TRUE(smp_mgmt_err_name(14) == NULL);
        ASSERT_TRUE(smp_mgmt_err_name(-1) == NULL);
        ASSERT_STREQ(smp_mgmt_err_name(256), "EPERUSER");
        ASSERT_STREQ(smp_mgmt_err_name(300), "EPERUSER");

        for (uint64_t rc = 0; rc <= 34; rc++)
                ASSERT_TRUE(smp_group_err_name(SMP_GROUP_IMAGE, rc) != NULL);
        ASSERT_TRUE(smp_group_err_name(SMP_GROUP_IMAGE, 35) == NULL);
        for (uint64_t rc = 0; rc <= 7; rc++)
                ASSERT_TRUE(smp_group_err_name(SMP_GROUP_OS, rc) != NULL);
        for (uint64_t rc = 0; rc <= 5; rc++)
                ASSERT_TRUE(smp_group_err_name(SMP_GROUP_STAT, rc) != NULL);
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_IMAGE, 9), "IMG_NO_FREE_SLOT");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_IMAGE, 34), "IMG_ACTIVE_SLOT_NOT_KNOWN");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_OS, 4), "OS_RTC_NOT_SET");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_STAT, 2), "STAT_INVALID_GROUP");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_SETTINGS, 3), "SETTINGS_KEY_NOT_FOUND");
        ASSERT_STREQ(smp_group_err_name(SMP_GROUP_FS, 11), "FS_FILE_OFFSET_NOT_VALID");
        ASSERT_TRUE(smp_group_err_name(64, 1) == NULL);

        /* Unknown codes: generic sentences with the numbers. */
        st = (struct smp_status) { .has_err = true, .err_group = 64, .err_rc = 77 };
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "unknown error 77 in group 64");
        ASSERT_EQ(smp_status_to_errno(&st), -EIO); /* legacy EUNKNOWN */
        st = (struct smp_status) { .has_rc = true, .rc = 99 };
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "unknown SMP error 99");
        ASSERT_EQ(smp_status_to_errno(&st), -EREMOTEIO);
        st = (struct smp_status) { .has_rc = true, .rc = 258 };
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "EPERUSER+2: application-defined error (rc 258)");
        st = (struct smp_status) { .has_rc = true, .rc = 0 };
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "success");
        /* A reason with control bytes is made printable. */
        st = (struct smp_status) { .has_rc = true, .rc = 1, .rsn = smp_cbor_slice_make("a\nb", 3) };
        ASSERT_TRUE(smp_status_format(&st, text, sizeof(text)) > 0);
        ASSERT_STREQ(text, "EUNKNOWN: unknown error (rc 1): a?b");
        /* Truncation behaves like snprintf. */
        ASSERT_EQ(smp_status_format(&st, text, 4), (int) strlen("EUNKNOWN: unknown error (rc 1): a?b"));
        ASSERT_STREQ(text, "EUN");
}

static void test_legacy_mapping(void) {
        /* protocol.md §1: image NO_IMAGE/NO_TLVS -> 5; NO_FREE_SLOT/
         * CURRENT_VERSION_IS_NEWER/IMAGE_ALREADY_PENDING -> 6; NO_FREE_MEMORY
         * -> 2; INVALID_SLOT/PAGE_OFFSET/OFFSET/LENGTH/IMAGE_HEADER/HASH/
         * FLASH_ADDRESS -> 3; rest -> 1. */
        static const int img[35] = {
                [0] = 0, [3] = 5, [4] = 5, [9] = 6, [27] = 6, [28] = 6, [15] = 2,
                [14] = 3, [19] = 3, [20] = 3, [21] = 3, [22] = 3, [24] = 3, [25] = 3,
        };
        for (uint64_t rc = 0; rc <= 34; rc++)
                ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_IMAGE, rc), rc == 0 ? 0 : (img[rc] ? img[rc] : 1));
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_IMAGE, 1000), 1);
        /* Zephyr os_mgmt.c os_mgmt_translate_error_code(). */
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_OS, 2), SMP_MGMT_ERR_EINVAL);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_OS, 3), SMP_MGMT_ERR_ENOENT);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_OS, 4), SMP_MGMT_ERR_ENOENT);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_OS, 5), SMP_MGMT_ERR_EUNKNOWN);
        /* Zephyr stat_mgmt.c stat_mgmt_translate_error_code(). */
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_STAT, 2), SMP_MGMT_ERR_ENOENT);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_STAT, 3), SMP_MGMT_ERR_ENOENT);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_STAT, 4), SMP_MGMT_ERR_EINVAL);
        ASSERT_EQ(smp_err_v1_legacy_rc(SMP_GROUP_STAT, 5), SMP_MGMT_ERR_EUNKNOWN);
        ASSERT_EQ(smp_err_v1_legacy_rc(77, 5), SMP_MGMT_ERR_EUNKNOWN);
}

/* ------------------------------------------------------------------ */
/* Upload chunk sizing                                                 */

static uint8_t big_data[SMP_FRAME_MAX + 16];
static uint8_t big_out[SMP_FRAME_MAX + 64];

/* Whole SMP packet size of req with n data bytes: 8 + encoded body. */
static size_t packet_size(struct smp_img_upload_req req, size_t n) {
        struct smp_cbor_writer w;

        ASSERT_TRUE(n <= sizeof(big_data));
        req.data = smp_cbor_slice_make(big_data, n);
        smp_cbor_writer_init(&w, big_out, sizeof(big_out));
        ASSERT_OK(smp_img_upload_req_encode(&w, &req));
        return SMP_HEADER_SIZE + w.len;
}

static void test_chunk_protocol_md_totals(void) {
        uint8_t sha[32] = { 0 };
        size_t d;

        /* protocol.md §3: "first chunk (len >= 65536, sha, >= 256 data) 69 B". */
        struct smp_img_upload_req first = {
                .off = 0, .has_len = true, .len = 100000, .sha = smp_cbor_slice_make(sha, 32),
        };
        ASSERT_OK(smp_img_upload_max_data(&first, 1024, &d));
        ASSERT_EQ(1024 - d, 69);
        ASSERT_EQ(packet_size(first, d), 1024);
        /* "later chunk 26 B (24 if off < 65536)". */
        struct smp_img_upload_req later = { .off = 70000 };
        ASSERT_OK(smp_img_upload_max_data(&later, 384, &d));
        ASSERT_EQ(384 - d, 26);
        later.off = 4096;
        ASSERT_OK(smp_img_upload_max_data(&later, 384, &d));
        ASSERT_EQ(384 - d, 24);
        ASSERT_EQ(packet_size(later, d), 384);

        /* Zephyr's default 384-byte buffer over serial (buf_size - 4 = 380
         * per packet, protocol.md §6): first chunk with sha and image. */
        first.has_image = true;
        ASSERT_OK(smp_img_upload_max_data(&first, 380, &d));
        ASSERT_EQ(d, 380 - 69 - 7); /* "image" costs 6 + its uint (1) */
        ASSERT_EQ(packet_size(first, d), 380);

        /* Too small for anything. */
        ASSERT_EQ(smp_img_upload_max_data(&first, 60, &d), -EMSGSIZE);
        ASSERT_EQ(smp_img_upload_max_data(&later, 8, &d), -EMSGSIZE);
}

static void check_chunk(const struct smp_img_upload_req *req, size_t budget) {
        size_t d, cap = MIN(budget, (size_t) SMP_FRAME_MAX);
        int r = smp_img_upload_max_data(req, budget, &d);

        if (r == -EMSGSIZE) {
                ASSERT_TRUE(packet_size(*req, 0) > cap);
                return;
        }
        ASSERT_OK(r);
        ASSERT_TRUE(packet_size(*req, d) <= cap);
        ASSERT_TRUE(packet_size(*req, d + 1) > cap);
}

static void test_chunk_property(void) {
        static const uint64_t offsets[] = {
                0, 1, 23, 24, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t) UINT32_MAX + 1,
        };
        uint8_t sha[32] = { 0 };
        size_t checked = 0;

        for (size_t o = 0; o < ELEMENTSOF(offsets); o++)
                for (int variant = 0; variant < 6; variant++) {
                        struct smp_img_upload_req req = { .off = offsets[o] };
                        if (variant >= 1)
                                req.has_len = true, req.len = variant == 1 ? 20 : 1u << 20;
                        if (variant >= 2)
                                req.sha = smp_cbor_slice_make(sha, variant == 2 ? 1 : 32);
                        if (variant >= 3)
                                req.has_image = true, req.image = variant == 3 ? 1 : 300;
                        if (variant >= 4)
                                req.has_upgrade = true, req.upgrade = true;
                        if (variant == 5)
                                req.len = (uint64_t) 1 << 40;

                        /* Every budget from 8 to 700: covers the 24- and 256-byte
                         * data head steps for all overheads. */
                        for (size_t budget = 8; budget <= 700; budget++, checked++)
                                check_chunk(&req, budget);
                        /* Around the 65536 step and the 16-bit body length cap. */
                        static const size_t big[] = { 65536 + 40, 65536 + 60, 65536 + 80, 65536 + 100,
                                                      SMP_FRAME_MAX - 1, SMP_FRAME_MAX, SMP_FRAME_MAX + 1,
                                                      (size_t) 1 << 20 };
                        for (size_t b = 0; b < ELEMENTSOF(big); b++, checked++)
                                check_chunk(&req, big[b]);
                }
        ASSERT_TRUE(checked > 40000);
}

/* ------------------------------------------------------------------ */
/* Malformed bodies for every typed decoder                            */

typedef int (*decode_fn)(const uint8_t *body, size_t len);

#define WRAP(name, fn, type, cleanup)                                           \
        static int name(const uint8_t *body, size_t len) {                      \
                type out;                                                       \
                int r = fn(body, len, &out, &err);                              \
                if (r >= 0)                                                     \
                        cleanup;                                                \
                return r;                                                       \
        }

WRAP(dec_echo_req, smp_os_echo_req_decode, struct smp_cbor_slice, (void) 0)
WRAP(dec_echo_rsp, smp_os_echo_rsp_decode, struct smp_cbor_slice, (void) 0)
WRAP(dec_taskstat, smp_os_taskstat_rsp_decode, struct smp_os_taskstat_rsp, smp_os_taskstat_rsp_done(&out))
WRAP(dec_params, smp_os_params_rsp_decode, struct smp_os_params_rsp, (void) 0)
WRAP(dec_reset, smp_os_reset_req_decode, struct smp_os_reset_req, (void) 0)
WRAP(dec_state, smp_img_state_rsp_decode, struct smp_img_state_rsp, (void) 0)
WRAP(dec_state_write, smp_img_state_write_req_decode, struct smp_img_state_write_req, (void) 0)
WRAP(dec_upload_req, smp_img_upload_req_decode, struct smp_img_upload_req, (void) 0)
WRAP(dec_upload_rsp, smp_img_upload_rsp_decode, struct smp_img_upload_rsp, (void) 0)
WRAP(dec_slot_info, smp_img_slot_info_rsp_decode, struct smp_img_slot_info_rsp, (void) 0)
WRAP(dec_stat_read, smp_stat_read_rsp_decode, struct smp_stat_read_rsp, smp_stat_read_rsp_done(&out))
WRAP(dec_stat_list, smp_stat_list_rsp_decode, struct smp_stat_list_rsp, smp_stat_list_rsp_done(&out))

static void test_truncated_and_padded_bodies(void) {
        static const struct {
                const char *hex;
                decode_fn fn;
        } cases[] = {
                { "a1 61 64 62 68 69", dec_echo_req },
                { "bf 61 72 62 68 69 ff", dec_echo_rsp },
                { TASKSTAT_ZCBOR, dec_taskstat },
                { PARAMS_ZCBOR, dec_params },
                { "a2 65 66 6f 72 63 65 f5 69 62 6f 6f 74 5f 6d 6f 64 65 01", dec_reset },
                { IMAGE_LIST_ZCBOR, dec_state },
                { STATE_TEST_HEX, dec_state_write },
                { UPLOAD_FIRST_HEX, dec_upload_req },
                { "bf 63 6f 66 66 1a 00 01 11 70 65 6d 61 74 63 68 f5 ff", dec_upload_rsp },
                { SLOT_INFO_HEX, dec_slot_info },
                { STAT_READ_ZCBOR, dec_stat_read },
                { STAT_LIST_HEX, dec_stat_list },
        };

        for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
                struct vec v = vec_hex(cases[c].hex);

                ASSERT_OK(cases[c].fn(v.p, v.n));
                /* Shorter than the body: every prefix fails. */
                for (size_t cut = 0; cut < v.n; cut++) {
                        uint8_t *p = malloc(cut ? cut : 1);
                        ASSERT_TRUE(p);
                        memcpy(p, v.p, cut);
                        ASSERT_TRUE(cases[c].fn(p, cut) < 0);
                        free(p);
                }
                /* Longer than the body: a trailing byte fails. */
                uint8_t *p = malloc(v.n + 1);
                ASSERT_TRUE(p);
                memcpy(p, v.p, v.n);
                p[v.n] = 0x00;
                ASSERT_EQ(cases[c].fn(p, v.n + 1), -EBADMSG);
                ASSERT_TRUE(strstr(err.message, "trailing") != NULL);
                /* Every single-byte corruption is handled (any result, no crash). */
                for (size_t i = 0; i < v.n; i++)
                        for (int bit = 0; bit < 8; bit++) {
                                memcpy(p, v.p, v.n);
                                p[i] ^= (uint8_t) (1u << bit);
                                (void) cases[c].fn(p, v.n);
                        }
                free(p);
                vec_free(&v);
        }
}

static void test_not_a_map_and_unknown_keys(void) {
        struct smp_img_upload_rsp rsp;
        struct vec v;

        /* Top level array [0]. */
        v = vec_hex("81 00");
        ASSERT_EQ(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err), -EBADMSG);
        vec_free(&v);
        /* Unknown keys, nested, before and after "off":
         *   BF 61 7A A1 61 79 9F 01 FF 63 "off" 05 67 "future!" F6 FF */
        v = vec_hex("bf 61 7a a1 61 79 9f 01 ff 63 6f 66 66 05 67 66 75 74 75 72 65 21 f6 ff");
        ASSERT_OK(smp_img_upload_rsp_decode(v.p, v.n, &rsp, &err));
        ASSERT_EQ(rsp.off, 5);
        vec_free(&v);
}

TEST_MAIN(TEST(test_echo_protocol_md_example),
          TEST(test_echo_rsp),
          TEST(test_params),
          TEST(test_reset),
          TEST(test_taskstat),
          TEST(test_datetime_info_bootloader),
          TEST(test_image_list),
          TEST(test_image_state_write),
          TEST(test_upload_req),
          TEST(test_upload_rsp),
          TEST(test_erase_and_slot_info),
          TEST(test_stat),
          TEST(test_error_names),
          TEST(test_legacy_mapping),
          TEST(test_chunk_protocol_md_totals),
          TEST(test_chunk_property),
          TEST(test_truncated_and_padded_bodies),
          TEST(test_not_a_map_and_unknown_keys))
