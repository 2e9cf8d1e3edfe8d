/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpsim's Bluetooth Mesh Distributor driven the way smpgw will drive a
 * real one: over a UDP session, the image uploaded with lib's update
 * procedure (upload only: never tested or confirmed there), every command
 * through smp_shell_exec_line(), every answer read by the mesh-dfu.h
 * parsers.  Faults and resets come through smpsim's control socket.
 *
 *   - a full distribution to 1 target, and to 8 in a group, verify only
 *     then apply, with the traps on the way (busy, a ninth receiver, a
 *     start with the same parameters, fw-delete-all while busy);
 *   - receivers lists over several command lines when the shell buffer is
 *     small; a line too long refused by lib before sending and by the
 *     device when sent anyway; pages cut by a small output buffer;
 *   - both slot wordings (--mesh-zephyr 3.4 and later) and legacy "rc";
 *   - per-target faults and re-driving the failed targets;
 *   - a reset of the Distributor mid-transfer, and after the apply;
 *   - group 9 on a device that is no Distributor, and a Distributor that
 *     tested and booted its slot 1 (it is gone).
 *
 * Needs $SMPSIM and $SMPGW_PLUGIN_DIR (meson sets both).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "smpgw/mcuboot-image.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-shell.h"
#include "smpgw/smp-update.h"
#include "test-context.h"
#include "test-util.h"

#define WAIT_USEC (20u * 1000u * 1000u)

static struct smp_context *ctx;
static sd_event *event;

/* ---- smpsim ---- */

struct sim {
        pid_t pid;
        uint16_t port;
        char dir[64];
        char control[96];
        FILE *ctl;
};

static uint16_t free_udp_ports(unsigned n) {
        for (int attempt = 0; attempt < 100; attempt++) {
                int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(a);
                ASSERT_TRUE(fd >= 0);
                ASSERT_OK(bind(fd, (struct sockaddr *) &a, sizeof(a)));
                ASSERT_OK(getsockname(fd, (struct sockaddr *) &a, &len));
                close(fd);
                uint16_t p = ntohs(a.sin_port);
                if (p < 1024 || p > 65535 - n)
                        continue;
                bool ok = true;
                for (unsigned i = 0; i < n && ok; i++) {
                        int t = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                        struct sockaddr_in b = a;
                        b.sin_port = htons((uint16_t) (p + i));
                        ok = bind(t, (struct sockaddr *) &b, sizeof(b)) == 0;
                        close(t);
                }
                if (ok)
                        return p;
        }
        abort();
}

/* Starts smpsim with two devices, device 0 a Distributor, and the given
 * extra arguments (NULL-terminated). */
static void sim_start(struct sim *s, ...) {
        const char *smpsim = getenv("SMPSIM");
        const char *argv[64];
        char endpoint[64];
        int argc = 0, out[2];
        va_list ap;

        ASSERT_TRUE(smpsim);
        s->port = free_udp_ports(2);
        snprintf(s->dir, sizeof(s->dir), "/tmp/test-mesh-XXXXXX");
        ASSERT_TRUE(mkdtemp(s->dir));
        snprintf(s->control, sizeof(s->control), "%s/control", s->dir);
        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", s->port);
        argv[argc++] = smpsim;
        argv[argc++] = "--udp";
        argv[argc++] = endpoint;
        argv[argc++] = "--count";
        argv[argc++] = "2";
        argv[argc++] = "--control";
        argv[argc++] = s->control;
        argv[argc++] = "--mesh-distributor=0";
        va_start(ap, s);
        for (const char *a; (a = va_arg(ap, const char *));) {
                ASSERT_TRUE(argc < 62);
                argv[argc++] = a;
        }
        va_end(ap);
        argv[argc] = NULL;

        ASSERT_OK(pipe2(out, O_CLOEXEC));
        s->pid = fork();
        ASSERT_TRUE(s->pid >= 0);
        if (s->pid == 0) {
                /* a test that aborts takes its simulator with it */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(out[1], STDOUT_FILENO);
                execv(smpsim, (char **) argv);
                _exit(127);
        }
        close(out[1]);
        char line[64];
        size_t got = 0;
        while (got < sizeof(line) - 1) {
                struct pollfd p = { .fd = out[0], .events = POLLIN };
                ASSERT_EQ(poll(&p, 1, 10000), 1);
                ASSERT_EQ(read(out[0], line + got, 1), 1);
                if (line[got] == '\n')
                        break;
                got++;
        }
        line[got] = 0;
        close(out[0]);
        ASSERT_STREQ(line, "ready");

        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ASSERT_TRUE(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->control);
        ASSERT_OK(connect(fd, (struct sockaddr *) &sa, sizeof(sa)));
        s->ctl = fdopen(fd, "r+");
        ASSERT_TRUE(s->ctl);
}

static void sim_stop(struct sim *s) {
        int status;
        fclose(s->ctl);
        ASSERT_OK(kill(s->pid, SIGTERM));
        ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        unlink(s->control);
        rmdir(s->dir);
}

/* One control socket command; the reply as JSON (ok asserted). */
static json_t *control(struct sim *s, const char *fmt, ...) _printf_(2, 3);
static json_t *control(struct sim *s, const char *fmt, ...) {
        char line[512], reply[65536];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fprintf(s->ctl, "%s\n", line);
        fflush(s->ctl);
        ASSERT_TRUE(fgets(reply, sizeof(reply), s->ctl));
        json_t *j = json_loads(reply, 0, NULL);
        ASSERT_TRUE(j);
        if (!json_is_true(json_object_get(j, "ok"))) {
                fprintf(stderr, "control '%s': %s", line, reply);
                abort();
        }
        return j;
}

/* The version the target at addr runs, from mesh-state. */
static void target_version(struct sim *s, unsigned addr, char *buf, size_t size) {
        json_t *st = control(s, "mesh-state 0"), *t;
        size_t i;
        json_array_foreach(json_object_get(st, "targets"), i, t) {
                if (json_integer_value(json_object_get(t, "addr")) == addr) {
                        snprintf(buf, size, "%s%s", json_string_value(json_object_get(t, "version")),
                                 json_is_true(json_object_get(t, "unprovisioned")) ? " unprovisioned" : "");
                        json_decref(st);
                        return;
                }
        }
        abort();
}

/* ---- the session and its calls ---- */

static struct smp_session *session_open(struct sim *s, unsigned dev) {
        char conn[64];
        struct smp_session *session;
        snprintf(conn, sizeof(conn), "udp:127.0.0.1:%u", s->port + dev);
        ASSERT_OK(smp_session_open(ctx, event, conn, &session));
        return session;
}

struct shell {
        bool done;
        int error;
        struct smp_status status;
        char out[8192];
        size_t out_len;
        int64_t ret;
        bool legacy_rc;
};

static void on_shell(struct smp_shell_exec *x, const struct smp_shell_result *r, void *userdata) {
        struct shell *sh = userdata;
        sh->done = true;
        sh->error = r->error;
        sh->status = r->status;
        sh->ret = r->ret;
        sh->legacy_rc = r->legacy_rc;
        sh->out_len = MIN(r->output_len, sizeof(sh->out) - 1);
        memcpy(sh->out, r->output, sh->out_len);
        sh->out[sh->out_len] = 0;
}

static void run_until(const bool *done) {
        uint64_t start, now;
        ASSERT_OK(sd_event_now(event, CLOCK_MONOTONIC, &start));
        do {
                ASSERT_OK(sd_event_run(event, 100000));
                ASSERT_OK(sd_event_now(event, CLOCK_MONOTONIC, &now));
                ASSERT_TRUE(now - start < WAIT_USEC);
        } while (!*done);
}

static void sleep_ms(unsigned ms) {
        usleep(ms * 1000u);
}

/* Runs one line with the given shell buffer size; asserts it ran. */
static struct shell sh_buf(struct smp_session *s, size_t cmd_buf, const char *fmt, ...) _printf_(3, 4);
static struct shell sh_buf(struct smp_session *s, size_t cmd_buf, const char *fmt, ...) {
        struct smp_shell_exec_params p = { .cmd_buf_size = cmd_buf };
        struct shell sh = { 0 };
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        ASSERT_OK(smp_shell_exec_line(s, line, &p, on_shell, &sh, NULL));
        run_until(&sh.done);
        if (sh.error) {
                fprintf(stderr, "'%s': error %d\n", line, sh.error);
                abort();
        }
        return sh;
}

#define sh(s, ...) sh_buf(s, 0, __VA_ARGS__)

static struct smp_mesh_dfd_state dfd_get(struct smp_session *s) {
        struct smp_mesh_dfd_state st;
        struct shell r = sh(s, "mesh models dfd get");
        ASSERT_EQ(r.ret, 0);
        ASSERT_OK(smp_mesh_dfd_state_parse(r.out, r.out_len, &st));
        return st;
}

static struct smp_mesh_dfd_state wait_phase(struct smp_session *s, uint8_t phase) {
        for (int i = 0; i < 2000; i++) {
                struct smp_mesh_dfd_state st = dfd_get(s);
                if (st.phase == phase)
                        return st;
                sleep_ms(10);
        }
        fprintf(stderr, "phase %u never came\n", phase);
        abort();
}

/* Every receiver, page by page, continuing after cut pages. */
static size_t receivers(struct smp_session *s, struct smp_mesh_target *out, size_t max) {
        struct smp_mesh_receivers_page *p = malloc(sizeof(*p));
        size_t n = 0;
        ASSERT_TRUE(p);
        for (;;) {
                struct shell r = sh(s, "mesh models dfd receivers-get %zu 8", n);
                if (r.ret == -EINVAL && r.out_len == 0)
                        break;          /* past the end */
                ASSERT_EQ(r.ret, 0);
                ASSERT_OK(smp_mesh_receivers_page_parse(r.out, r.out_len, p));
                ASSERT_TRUE(p->n_targets > 0);
                for (size_t i = 0; i < p->n_targets && n < max; i++) {
                        ASSERT_EQ(p->targets[i].index, n);
                        out[n++] = p->targets[i];
                }
                if (n >= p->target_cnt)
                        break;
        }
        free(p);
        return n;
}

static const struct smp_mesh_target *target_at(const struct smp_mesh_target *t, size_t n, unsigned addr) {
        for (size_t i = 0; i < n; i++)
                if (t[i].blob_addr == addr)
                        return &t[i];
        abort();
}

/* An MCUboot image of the given version and body size. */
static uint8_t *image_build(uint8_t major, size_t body_size, size_t *ret_size) {
        uint8_t *body = malloc(body_size), *data;
        ASSERT_TRUE(body);
        for (size_t i = 0; i < body_size; i++)
                body[i] = (uint8_t) (i * 7 + major);
        const struct mcuboot_build_params p = {
                .version = { .major = major },
                .hdr_size = 0x200,
                .body = body,
                .body_size = body_size,
        };
        ASSERT_OK(mcuboot_image_build(&p, &data, ret_size));
        free(body);
        return data;
}

struct answer {
        bool done;
        int error;
        struct smp_status status;
};

static void on_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                      size_t len, void *userdata) {
        struct answer *a = userdata;
        a->done = true;
        a->error = error;
        if (error == 0)
                ASSERT_OK(smp_status_decode(body, len, &a->status, NULL));
}

struct upload {
        bool done;
        struct smp_update_result result;
};

static void on_update(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct upload *up = userdata;
        up->done = true;
        up->result = *r;
}

/* Uploads into slot 1 (upload only), checks it is not pending. */
static void upload(struct smp_session *s, const uint8_t *data, size_t len) {
        struct upload up = { 0 };
        struct smp_update *u;
        const struct smp_update_params p = {
                .data = data, .len = len, .mode = SMP_UPDATE_UPLOAD_ONLY, .done = on_update, .userdata = &up,
        };
        ASSERT_OK(smp_update_start(s, &p, &u));
        run_until(&up.done);
        ASSERT_EQ(up.result.error, 0);
        ASSERT_EQ(up.result.outcome, SMP_UPDATE_OUTCOME_UPLOADED);
        for (size_t i = 0; i < up.result.after.n_slots; i++)
                ASSERT_TRUE(!up.result.after.slots[i].pending);
}

/* Uploads an image of `major`.0.0 and registers it: slot 0.  Returns
 * the image's size. */
static size_t prepare(struct smp_session *s, uint8_t major, size_t body) {
        size_t len;
        uint8_t *img = image_build(major, body, &len);
        struct mcuboot_image *parsed;
        struct smp_mesh_metadata md;
        struct smp_mesh_slot_add_result added;
        uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN], mdb[SMP_MESH_METADATA_MAXLEN];
        char line[256];

        upload(s, img, len);
        ASSERT_OK(mcuboot_image_parse(img, len, &parsed, NULL));
        smp_mesh_fwid_from_version(&parsed->version, fwid);
        const struct smp_mesh_composition comp = { .hash = 0x71f3267c, .elements = 1 };
        ASSERT_OK(smp_mesh_metadata_from_image(parsed, SMP_MESH_CORE_APP, &comp, &md));
        int n = smp_mesh_metadata_encode(&md, mdb, sizeof(mdb));
        ASSERT_EQ(n, 18);
        ASSERT_OK(smp_mesh_slot_add_cmd((uint32_t) len, fwid, sizeof(fwid), mdb, (size_t) n, line, sizeof(line)));
        struct shell r = sh(s, "%s", line);
        ASSERT_EQ(r.ret, 0);
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_ADDED);
        ASSERT_EQ(added.idx, 0);
        ASSERT_EQ(added.size, len);
        mcuboot_image_free(parsed);
        free(img);
        return len;
}

static void add_receivers(struct smp_session *s, size_t cmd_buf, uint16_t first, size_t n, size_t *ret_lines) {
        struct smp_mesh_receiver r[64];
        char **lines;
        size_t n_lines;

        ASSERT_TRUE(n <= 64);
        for (size_t i = 0; i < n; i++)
                r[i] = (struct smp_mesh_receiver) { .addr = (uint16_t) (first + i) };
        ASSERT_OK(smp_mesh_receivers_add_cmds(r, n, cmd_buf, &lines, &n_lines));
        for (size_t i = 0; i < n_lines; i++) {
                struct shell res = sh_buf(s, cmd_buf, "%s", lines[i]);
                struct smp_mesh_receivers_status st;
                ASSERT_EQ(res.ret, 0);
                ASSERT_OK(smp_mesh_receivers_status_parse(res.out, res.out_len, &st));
                ASSERT_EQ(st.status, 0);
        }
        if (ret_lines)
                *ret_lines = n_lines;
        smp_strv_free(lines);
}

static struct shell start(struct smp_session *s, uint16_t group, bool apply) {
        const struct smp_mesh_dfd_start_params p = {
                .group = group, .apply = apply, .ttl = SMP_MESH_TTL_DEFAULT, .xfer_mode = SMP_MESH_XFER_MODE_PUSH,
        };
        char line[128];
        ASSERT_OK(smp_mesh_dfd_start_cmd(&p, line, sizeof(line)));
        return sh(s, "%s", line);
}

static void expect_dfd_status(const struct shell *r, uint8_t status, uint8_t phase) {
        struct smp_mesh_dfd_state st;
        ASSERT_OK(smp_mesh_dfd_state_parse(r->out, r->out_len, &st));
        ASSERT_EQ(st.status, status);
        ASSERT_EQ(st.phase, phase);
        ASSERT_EQ(r->ret, status ? -EINVAL : 0);
}

/* ---- the scenarios ---- */

static void test_one_target(void) {
        struct sim sim;
        struct smp_mesh_target t[8];
        struct smp_mesh_dfd_capabilities caps;
        char version[64];

        sim_start(&sim, "--mesh-targets", "1", "--mesh-time-scale", "100", NULL);
        struct smp_session *s = session_open(&sim, 0);

        struct shell r = sh(s, "mesh models dfd capabilities-get");
        ASSERT_OK(smp_mesh_dfd_capabilities_parse(r.out, r.out_len, &caps));
        ASSERT_EQ(caps.targets_max, 8);
        ASSERT_EQ(caps.slot_cnt, 1);

        prepare(s, 2, 4000);
        add_receivers(s, 0, 0x0100, 1, NULL);
        r = start(s, 0, true);
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        struct smp_mesh_dfd_state st = wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_TRUE(st.has_params && st.apply && st.slot_idx == 0);
        ASSERT_EQ(receivers(s, t, 8), 1);
        ASSERT_EQ(t[0].blob_addr, 0x0100);
        ASSERT_EQ(t[0].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
        ASSERT_EQ(t[0].status, 0);
        ASSERT_EQ(smp_mesh_progress_percent(t[0].progress), 100);
        target_version(&sim, 0x0100, version, sizeof(version));
        ASSERT_STREQ(version, "2.0.0+0");

        smp_session_free(s);
        sim_stop(&sim);
}

static void test_eight_targets_verify_then_apply(void) {
        struct sim sim;
        struct smp_mesh_target t[16];
        struct smp_mesh_receivers_status rs;
        char version[64];

        /* 8 targets and a ninth node: 16 KiB at 300 B/s x 40 is ~1.4 s */
        sim_start(&sim, "--mesh-targets", "9", "--mesh-time-scale", "40", NULL);
        struct smp_session *s = session_open(&sim, 0);
        prepare(s, 3, 16000);
        add_receivers(s, 0, 0x0100, 8, NULL);

        /* a ninth: status 1 (insufficient resources), -ENOSPC */
        struct shell r = sh(s, "mesh models dfd receivers-add 0x0108,0");
        ASSERT_EQ(r.ret, -ENOSPC);
        ASSERT_OK(smp_mesh_receivers_status_parse(r.out, r.out_len, &rs));
        ASSERT_EQ(rs.status, SMP_MESH_DFD_ERR_INSUFFICIENT_RESOURCES);
        ASSERT_EQ(rs.target_cnt, 8);
        /* a group address is skipped without a word */
        r = sh(s, "mesh models dfd receivers-add 0xc000,0");
        ASSERT_OK(smp_mesh_receivers_status_parse(r.out, r.out_len, &rs));
        ASSERT_EQ(rs.status, 0);
        ASSERT_EQ(rs.target_cnt, 8);

        r = start(s, 0xc000, false);
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);

        /* the traps while it runs */
        r = sh(s, "mesh models dfd receivers-add 0x0105,0");
        ASSERT_EQ(r.ret, -EBUSY);
        ASSERT_OK(smp_mesh_receivers_status_parse(r.out, r.out_len, &rs));
        ASSERT_EQ(rs.status, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
        r = sh(s, "mesh models dfd receivers-delete-all");
        ASSERT_EQ(r.ret, -EBUSY);
        r = start(s, 0xc000, true);             /* other parameters */
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        r = start(s, 0xc000, false);            /* the same: a no-op success */
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        r = sh(s, "mesh models dfd apply");     /* not verified yet */
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_WRONG_PHASE, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        r = sh(s, "mesh models dfd fw-delete-all");
        struct smp_mesh_fw_status fw;
        ASSERT_OK(smp_mesh_fw_status_parse(r.out, r.out_len, &fw));
        ASSERT_EQ(fw.status, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION);
        ASSERT_EQ(fw.slot_cnt, 1);

        /* progress moves, one figure for all, in units of 2 % */
        unsigned seen_mid = 0, last = 0;
        for (int i = 0; i < 400; i++) {
                size_t n = receivers(s, t, 16);
                ASSERT_EQ(n, 8);
                for (size_t k = 1; k < n; k++)
                        ASSERT_EQ(t[k].progress, t[0].progress);
                ASSERT_TRUE(t[0].progress >= last || t[0].phase >= SMP_MESH_DFU_PHASE_VERIFY);
                last = t[0].progress;
                if (t[0].progress > 0 && t[0].progress < 50 && t[0].phase == SMP_MESH_DFU_PHASE_TRANSFER_ACTIVE)
                        seen_mid++;
                if (dfd_get(s).phase == SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS)
                        break;
                sleep_ms(20);
        }
        ASSERT_TRUE(seen_mid > 0);

        struct smp_mesh_dfd_state st = wait_phase(s, SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS);
        ASSERT_EQ(st.group, 0xc000);
        ASSERT_TRUE(!st.apply);
        ASSERT_EQ(receivers(s, t, 16), 8);
        for (size_t k = 0; k < 8; k++)
                ASSERT_EQ(t[k].phase, SMP_MESH_DFU_PHASE_VERIFY_OK);
        target_version(&sim, 0x0104, version, sizeof(version));
        ASSERT_STREQ(version, "1.0.0+0");       /* verified, not applied */

        r = sh(s, "mesh models dfd apply");
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_APPLYING_UPDATE);
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_EQ(receivers(s, t, 16), 8);
        for (size_t k = 0; k < 8; k++) {
                ASSERT_EQ(t[k].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
                target_version(&sim, t[k].blob_addr, version, sizeof(version));
                ASSERT_STREQ(version, "3.0.0+0");
        }
        target_version(&sim, 0x0108, version, sizeof(version));
        ASSERT_STREQ(version, "1.0.0+0");       /* the ninth was never in */

        /* completed: the same start is still a no-op, cancel goes idle */
        r = start(s, 0xc000, false);
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_COMPLETED);
        r = sh(s, "mesh models dfd cancel");
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd fw-delete-all");
        ASSERT_OK(smp_mesh_fw_status_parse(r.out, r.out_len, &fw));
        ASSERT_EQ(fw.status, 0);
        ASSERT_EQ(fw.slot_cnt, 0);
        ASSERT_EQ(fw.idx, 0xffff);

        smp_session_free(s);
        sim_stop(&sim);
}

/* A 64-byte shell buffer and a 300-byte output buffer (Zephyr's
 * defaults for the latter). */
static void test_small_shell_buffers(void) {
        struct sim sim;
        struct smp_mesh_target t[16];
        struct smp_mesh_receivers_page *page = malloc(sizeof(*page));
        size_t n_lines;

        ASSERT_TRUE(page);
        sim_start(&sim, "--mesh-targets", "8", "--mesh-shell-buf", "64", "--mesh-shell-out", "300", NULL);
        struct smp_session *s = session_open(&sim, 0);

        add_receivers(s, 64, 0x0100, 8, &n_lines);
        ASSERT_EQ(n_lines, 3);                  /* 30 + 3 x 9 - 1 = 56 < 64: three per line */

        /* lib refuses a longer line before sending anything */
        struct smp_session_stats before, after;
        const struct smp_shell_exec_params p = { .cmd_buf_size = 64 };
        struct shell dummy = { 0 };
        smp_session_get_stats(s, &before);
        ASSERT_EQ(smp_shell_exec_line(s, "mesh models dfd receivers-add 0x0100,0;0x0101,0;0x0102,0;0x0103,0", &p,
                                      on_shell, &dummy, NULL), -E2BIG);
        smp_session_get_stats(s, &after);
        ASSERT_EQ(after.requests, before.requests);

        /* sent anyway (a caller told lib the buffer is larger): the device
         * refuses it with the group error, before running anything */
        const struct smp_shell_exec_params big = { .cmd_buf_size = 512 };
        struct shell r = { 0 };
        ASSERT_OK(smp_shell_exec_line(s, "mesh models dfd receivers-add 0x0100,0;0x0101,0;0x0102,0;0x0103,0", &big,
                                      on_shell, &r, NULL));
        run_until(&r.done);
        ASSERT_EQ(r.error, -EREMOTEIO);
        ASSERT_TRUE(r.status.has_err);
        ASSERT_EQ(r.status.err_group, SMP_GROUP_SHELL);
        ASSERT_EQ(r.status.err_rc, SMP_SHELL_ERR_COMMAND_TOO_LONG);
        /* exactly 63 characters run, 64 do not */
        r = sh_buf(s, 64, "mesh models dfd receivers-get 0 1 %s", "");
        ASSERT_EQ(r.ret, 0);

        /* 8 entries do not fit 299 bytes: the page is cut, paging goes on */
        r = sh(s, "mesh models dfd receivers-get 0 8");
        ASSERT_EQ(r.out_len, 299);
        ASSERT_OK(smp_mesh_receivers_page_parse(r.out, r.out_len, page));
        ASSERT_TRUE(!page->complete);
        ASSERT_EQ(page->target_cnt, 8);
        ASSERT_TRUE(page->n_targets >= 1 && page->n_targets < 8);
        ASSERT_EQ(receivers(s, t, 16), 8);
        for (unsigned k = 0; k < 8; k++)
                ASSERT_EQ(t[k].blob_addr, 0x0100 + k);

        free(page);
        smp_session_free(s);
        sim_stop(&sim);
}

static void test_zephyr_34_wording(void) {
        struct sim sim;
        struct smp_mesh_slot_add_result added;
        struct smp_mesh_target t[4];

        sim_start(&sim, "--mesh-targets", "2", "--mesh-zephyr", "3.4", "--mesh-time-scale", "100", NULL);
        struct smp_session *s = session_open(&sim, 0);

        size_t len = prepare(s, 2, 3000);       /* parses "Slot added. ID: 0" */
        struct shell r = sh(s, "mesh models dfu slot add 3000 0300000000000000");
        ASSERT_EQ(r.ret, 0);                    /* failed, yet 0 */
        ASSERT_TRUE(strstr(r.out, "Failed.\r\n"));
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_FAILED);
        /* v3.4 takes a slot without a firmware ID */
        r = sh(s, "mesh models dfu slot del 0");
        ASSERT_TRUE(strstr(r.out, "Slot 0 deleted."));
        r = sh(s, "mesh models dfu slot add 3000");
        ASSERT_TRUE(strstr(r.out, "Slot added. ID: 0"));
        r = sh(s, "mesh models dfu slot del-all");
        ASSERT_TRUE(strstr(r.out, "All slots deleted."));
        r = sh(s, "mesh models dfu slot add %zu 0200000000000000", len);
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_ADDED);

        add_receivers(s, 0, 0x0100, 2, NULL);
        r = start(s, 0, true);
        ASSERT_TRUE(strstr(r.out, "\"group\": 0x0000"));
        r = sh(s, "mesh models dfd receivers-get 0 2");
        ASSERT_TRUE(strstr(r.out, "\"blob_addr\": 0x0101"));
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_EQ(receivers(s, t, 4), 2);
        ASSERT_EQ(t[1].blob_addr, 0x0101);
        ASSERT_EQ(t[1].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);

        smp_session_free(s);
        sim_stop(&sim);
}

static void test_later_wording_traps(void) {
        struct sim sim;
        struct smp_mesh_slot_add_result added;
        struct smp_mesh_slot_del_result del;

        sim_start(&sim, "--mesh-targets", "2", NULL);
        struct smp_session *s = session_open(&sim, 0);

        /* nothing to distribute to, nothing distributed */
        struct shell r = sh(s, "mesh models dfd start 0 0");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_RECEIVERS_LIST_EMPTY, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd receivers-get 0 8");
        ASSERT_EQ(r.ret, -EINVAL);
        ASSERT_EQ(r.out_len, 0);
        add_receivers(s, 0, 0x0100, 1, NULL);
        r = sh(s, "mesh models dfd start 0 0");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_FW_NOT_FOUND, SMP_MESH_DFD_PHASE_IDLE);

        /* a slot needs a firmware ID now; one slot only */
        r = sh(s, "mesh models dfu slot add 3000");
        ASSERT_TRUE(strstr(r.out, "wrong parameter count"));
        ASSERT_EQ(smp_mesh_slot_add_parse(r.out, r.out_len, &added), -EBADMSG);
        r = sh(s, "mesh models dfu slot add 0 0200000000000000");
        ASSERT_EQ(r.ret, -EINVAL);
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_COMMIT_FAILED);
        ASSERT_EQ(added.err, -EINVAL);
        prepare(s, 2, 3000);                    /* "Slot added. Index: 0" */
        r = sh(s, "mesh models dfu slot add 3000 0300000000000000");
        ASSERT_EQ(r.ret, 0);                    /* failed, yet 0: read the text */
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_NO_FREE_SLOT);
        r = sh(s, "mesh models dfu slot del 3");
        ASSERT_OK(smp_mesh_slot_del_parse(r.out, r.out_len, &del));
        ASSERT_EQ(del.outcome, SMP_MESH_SLOT_NOT_FOUND);

        r = sh(s, "mesh models dfd start 1 0");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_INVALID_APPKEY_INDEX, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd apply");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_WRONG_PHASE, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd suspend");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_WRONG_PHASE, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd start 0 0x");
        ASSERT_EQ(r.ret, -EINVAL);
        ASSERT_TRUE(strstr(r.out, "Unable to parse input string argument"));
        r = sh(s, "mesh models dfd bogus");
        ASSERT_EQ(r.ret, -EINVAL);
        r = sh(s, "kernel version");
        ASSERT_EQ(r.ret, -ENOEXEC);

        /* the shell's defaults: no policy means apply */
        json_decref(control(&sim, "mesh-set 0 time-scale=20"));
        r = sh(s, "mesh models dfd start 0 0");
        struct smp_mesh_dfd_state st;
        ASSERT_OK(smp_mesh_dfd_state_parse(r.out, r.out_len, &st));
        ASSERT_TRUE(st.apply && st.ttl == 255 && st.xfer_mode == 1 && st.group == 0);

        /* suspend during the transfer, resume by the same start */
        for (int i = 0; i < 500; i++) {
                r = sh(s, "mesh models dfd suspend");
                if (r.ret == 0)
                        break;
                sleep_ms(5);                    /* still starting: suspend failed (13) */
                ASSERT_OK(smp_mesh_dfd_state_parse(r.out, r.out_len, &st));
                ASSERT_EQ(st.status, SMP_MESH_DFD_ERR_SUSPEND_FAILED);
        }
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED);
        r = sh(s, "mesh models dfd receivers-delete-all");
        ASSERT_EQ(r.ret, 0);                    /* the client is not busy while suspended */
        add_receivers(s, 0, 0x0100, 1, NULL);
        r = sh(s, "mesh models dfd start 0 0 0 false");
        expect_dfd_status(&r, SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION, SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED);
        r = sh(s, "mesh models dfd start 0 0");
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);

        /* cancel mid-transfer: canceling, then idle */
        r = sh(s, "mesh models dfd cancel");
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_CANCELING_UPDATE);
        wait_phase(s, SMP_MESH_DFD_PHASE_IDLE);

        smp_session_free(s);
        sim_stop(&sim);
}

static void test_legacy_rc(void) {
        struct sim sim;
        struct smp_mesh_receivers_status rs;

        sim_start(&sim, "--mesh-targets", "9", "--mesh-legacy-rc", "--mesh-time-scale", "100", NULL);
        struct smp_session *s = session_open(&sim, 0);
        prepare(s, 2, 3000);
        add_receivers(s, 0, 0x0100, 8, NULL);
        struct shell r = sh(s, "mesh models dfd receivers-add 0x0108,0");
        ASSERT_TRUE(r.legacy_rc);
        ASSERT_EQ(r.ret, -ENOSPC);              /* came as "rc", read as the command's */
        ASSERT_OK(smp_mesh_receivers_status_parse(r.out, r.out_len, &rs));
        ASSERT_EQ(rs.status, SMP_MESH_DFD_ERR_INSUFFICIENT_RESOURCES);
        r = start(s, 0, true);
        ASSERT_TRUE(r.legacy_rc);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        smp_session_free(s);
        sim_stop(&sim);
}

static void test_faults_and_redrive(void) {
        struct sim sim;
        struct smp_mesh_target t[8];
        char version[64];

        sim_start(&sim, "--mesh-targets", "6", "--mesh-time-scale", "50",
                  "--mesh-fault", "dev=0:target=0x0100:lost-at=30",
                  "--mesh-fault", "target=0x0101:verify-fail", NULL);
        struct smp_session *s = session_open(&sim, 0);
        json_decref(control(&sim, "mesh-fault 0 target=0x0102:apply-fail"));
        json_decref(control(&sim, "mesh-fault 0 target=0x0103:old-firmware"));
        json_decref(control(&sim, "mesh-fault 0 target=0x0104:unprovisioned"));
        prepare(s, 2, 8000);
        add_receivers(s, 0, 0x0100, 6, NULL);
        struct shell r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);

        /* one target succeeding is a success */
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_EQ(receivers(s, t, 8), 6);
        const struct smp_mesh_target *x;
        x = target_at(t, 6, 0x0100);            /* lost: last phase it reported */
        ASSERT_EQ(x->status, SMP_MESH_DFU_ERR_INTERNAL);
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_TRANSFER_ACTIVE);
        ASSERT_EQ(x->blob_status, 9);
        x = target_at(t, 6, 0x0101);
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_VERIFY_FAIL);
        ASSERT_EQ(x->status, SMP_MESH_DFU_ERR_WRONG_PHASE);
        x = target_at(t, 6, 0x0102);
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_APPLY_FAIL);
        ASSERT_EQ(x->status, SMP_MESH_DFU_ERR_INTERNAL);
        x = target_at(t, 6, 0x0103);
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_APPLY_FAIL);
        x = target_at(t, 6, 0x0104);            /* unprovisioned: silence is success */
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_APPLYING);
        ASSERT_EQ(x->status, 0);
        x = target_at(t, 6, 0x0105);
        ASSERT_EQ(x->phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
        target_version(&sim, 0x0103, version, sizeof(version));
        ASSERT_STREQ(version, "1.0.0+0");
        target_version(&sim, 0x0104, version, sizeof(version));
        ASSERT_STREQ(version, "2.0.0+0 unprovisioned");
        target_version(&sim, 0x0105, version, sizeof(version));
        ASSERT_STREQ(version, "2.0.0+0");

        /* re-drive the four that failed: cancel (completed -> idle), new
         * receivers, start */
        json_decref(control(&sim, "mesh-clear-faults 0"));
        r = sh(s, "mesh models dfd cancel");
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_IDLE);
        r = sh(s, "mesh models dfd receivers-delete-all");
        ASSERT_EQ(r.ret, 0);
        add_receivers(s, 0, 0x0100, 4, NULL);
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_EQ(receivers(s, t, 8), 4);
        for (unsigned k = 0; k < 4; k++) {
                ASSERT_EQ(t[k].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
                target_version(&sim, t[k].blob_addr, version, sizeof(version));
                ASSERT_STREQ(version, "2.0.0+0");
        }

        /* everybody lost mid-transfer: every target timed out, so the
         * BLOB client suspends the transfer on its own (blob_cli.c
         * suspend()), no suspend asked; progress reads 100 % there */
        r = sh(s, "mesh models dfd cancel");
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_IDLE);
        json_decref(control(&sim, "mesh-fault 0 target=all:lost-at=10"));
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED);
        ASSERT_EQ(receivers(s, t, 8), 4);
        for (unsigned k = 0; k < 4; k++) {
                ASSERT_EQ(t[k].status, SMP_MESH_DFU_ERR_INTERNAL);
                ASSERT_EQ(smp_mesh_progress_percent(t[k].progress), 100);
        }
        /* resumed while they are still gone: the Update Start times out,
         * the distribution fails; the same start from failed runs again */
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_FAILED);
        ASSERT_EQ(receivers(s, t, 8), 4);
        for (unsigned k = 0; k < 4; k++)
                ASSERT_EQ(t[k].status, SMP_MESH_DFU_ERR_INTERNAL);
        json_decref(control(&sim, "mesh-clear-faults all"));
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);

        /* suspended on its own, then back in range: the same start
         * resumes, the timed out targets are in again */
        r = sh(s, "mesh models dfd cancel");
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_IDLE);
        json_decref(control(&sim, "mesh-fault 0 target=all:lost-at=20"));
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED);
        json_decref(control(&sim, "mesh-clear-faults all"));
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_COMPLETED);
        ASSERT_EQ(receivers(s, t, 8), 4);
        for (unsigned k = 0; k < 4; k++)
                ASSERT_EQ(t[k].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);

        smp_session_free(s);
        sim_stop(&sim);
}

static void wait_booted(struct sim *sim) {
        for (int i = 0; i < 1000; i++) {
                json_t *st = control(sim, "state 0");
                bool rebooting = json_is_true(json_object_get(st, "rebooting"));
                json_decref(st);
                if (!rebooting)
                        return;
                sleep_ms(10);
        }
        abort();
}

/* Registers the image in slot 1 (major.0.0, len bytes) again, with the
 * given metadata (NULL: none). */
static void register_again(struct smp_session *s, uint8_t major, size_t len, const struct smp_mesh_metadata *md) {
        const struct mcuboot_version v = { .major = major };
        struct smp_mesh_slot_add_result added;
        uint8_t fwid[SMP_MESH_FWID_MCUBOOT_LEN], mdb[SMP_MESH_METADATA_MAXLEN];
        char line[256];
        int n = 0;

        smp_mesh_fwid_from_version(&v, fwid);
        if (md) {
                n = smp_mesh_metadata_encode(md, mdb, sizeof(mdb));
                ASSERT_TRUE(n >= 12);
        }
        struct shell r = sh(s, "mesh models dfu slot del-all");
        ASSERT_EQ(r.ret, 0);
        ASSERT_OK(smp_mesh_slot_add_cmd((uint32_t) len, fwid, sizeof(fwid), md ? mdb : NULL, (size_t) n, line,
                                        sizeof(line)));
        r = sh(s, "%s", line);
        ASSERT_OK(smp_mesh_slot_add_parse(r.out, r.out_len, &added));
        ASSERT_EQ(added.outcome, SMP_MESH_SLOT_ADDED);
}

/* Runs a distribution of slot 0 to the receivers there are, to its end
 * (phase), and reads them. */
static size_t distribute(struct smp_session *s, uint8_t end_phase, struct smp_mesh_target *t, size_t max) {
        struct shell r = sh(s, "mesh models dfd cancel");
        ASSERT_EQ(r.ret, 0);
        wait_phase(s, SMP_MESH_DFD_PHASE_IDLE);
        r = start(s, 0, true);
        expect_dfd_status(&r, SMP_MESH_DFD_SUCCESS, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, end_phase);
        return receivers(s, t, max);
}

/* --mesh-metadata-check: targets judge the metadata as NCS's target
 * sample does: status 5 (metadata check failed, phase idle) for none,
 * for no application core, for a version not newer than theirs; the
 * effect "unprovision" for another composition hash than theirs, none
 * for theirs. */
static void test_metadata_check(void) {
        struct sim sim;
        struct smp_mesh_target t[8];
        char version[64];

        /* 0x71f3267c, the hash prepare() sends */
        sim_start(&sim, "--mesh-targets", "3", "--mesh-time-scale", "100", "--mesh-metadata-check", "--mesh-comp-hash",
                  "1911760508", NULL);
        json_decref(control(&sim, "mesh-version 0 target=0x0102:3.0.0"));
        struct smp_session *s = session_open(&sim, 0);
        size_t len = prepare(s, 2, 3000);
        add_receivers(s, 0, 0x0100, 3, NULL);

        /* The composition of the targets: effect none, except for the
         * target that runs a newer firmware than the image. */
        ASSERT_EQ(distribute(s, SMP_MESH_DFD_PHASE_COMPLETED, t, 8), 3);
        ASSERT_EQ(t[0].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
        ASSERT_EQ(t[1].phase, SMP_MESH_DFU_PHASE_APPLY_SUCCESS);
        ASSERT_EQ(t[2].phase, SMP_MESH_DFU_PHASE_IDLE);
        ASSERT_EQ(t[2].status, SMP_MESH_DFU_ERR_METADATA);
        target_version(&sim, 0x0100, version, sizeof(version));
        ASSERT_STREQ(version, "2.0.0+0");
        target_version(&sim, 0x0102, version, sizeof(version));
        ASSERT_STREQ(version, "3.0.0+0");

        /* No metadata, and metadata without the application core: every
         * target refuses, the distribution fails. */
        json_decref(control(&sim, "mesh-version 0 1.0.0"));
        const struct smp_mesh_metadata network = { .version = { .major = 2 },
                                                   .size = (uint32_t) len,
                                                   .core_type = SMP_MESH_CORE_NETWORK };
        for (int round = 0; round < 2; round++) {
                register_again(s, 2, len, round == 0 ? NULL : &network);
                ASSERT_EQ(distribute(s, SMP_MESH_DFD_PHASE_FAILED, t, 8), 3);
                for (size_t i = 0; i < 3; i++) {
                        ASSERT_EQ(t[i].phase, SMP_MESH_DFU_PHASE_IDLE);
                        ASSERT_EQ(t[i].status, SMP_MESH_DFU_ERR_METADATA);
                }
                target_version(&sim, 0x0101, version, sizeof(version));
                ASSERT_STREQ(version, "1.0.0+0");
        }

        /* Another composition hash: taken, and the targets come back
         * unprovisioned (silence is the success). */
        const struct smp_mesh_metadata other = { .version = { .major = 2 },
                                                 .size = (uint32_t) len,
                                                 .core_type = SMP_MESH_CORE_APP,
                                                 .has_composition = true,
                                                 .comp_hash = 0,
                                                 .elements = 1 };
        register_again(s, 2, len, &other);
        ASSERT_EQ(distribute(s, SMP_MESH_DFD_PHASE_COMPLETED, t, 8), 3);
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_EQ(t[i].status, SMP_MESH_DFU_SUCCESS);
                target_version(&sim, 0x0100 + i, version, sizeof(version));
                ASSERT_STREQ(version, "2.0.0+0 unprovisioned");
        }

        smp_session_free(s);
        sim_stop(&sim);
}

static void test_distributor_reset(void) {
        struct sim sim;
        struct smp_mesh_target t[4];
        char version[64];

        /* 8 KiB at 300 B/s x 10: ~2.7 s of transfer to reset in */
        sim_start(&sim, "--mesh-targets", "2", "--mesh-time-scale", "10", "--boot-ms", "50", NULL);
        struct smp_session *s = session_open(&sim, 0);
        prepare(s, 2, 8000);
        add_receivers(s, 0, 0x0100, 2, NULL);
        struct shell r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        sleep_ms(400);
        ASSERT_EQ(dfd_get(s).phase, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);

        json_decref(control(&sim, "reset 0"));
        wait_booted(&sim);
        /* RAM is gone: idle, no parameters, no receivers */
        struct smp_mesh_dfd_state st = dfd_get(s);
        ASSERT_EQ(st.phase, SMP_MESH_DFD_PHASE_IDLE);
        ASSERT_TRUE(!st.has_params);
        r = sh(s, "mesh models dfd receivers-get 0 8");
        ASSERT_EQ(r.ret, -EINVAL);
        ASSERT_EQ(r.out_len, 0);
        /* the slot is in settings: still there */
        r = sh(s, "mesh models dfu slot get 0");
        ASSERT_TRUE(strstr(r.out, "FWID:     0200000000000000"));
        target_version(&sim, 0x0100, version, sizeof(version));
        ASSERT_STREQ(version, "1.0.0+0");

        /* distributing again from scratch works; a reset once the apply is
         * out does not stop the targets from booting the new image */
        json_decref(control(&sim, "mesh-set 0 time-scale=100"));
        add_receivers(s, 0, 0x0100, 2, NULL);
        r = start(s, 0, true);
        expect_dfd_status(&r, 0, SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE);
        wait_phase(s, SMP_MESH_DFD_PHASE_APPLYING_UPDATE);
        ASSERT_EQ(receivers(s, t, 4), 2);
        for (int i = 0; i < 200 && t[0].phase != SMP_MESH_DFU_PHASE_APPLYING; i++) {
                sleep_ms(5);
                ASSERT_EQ(receivers(s, t, 4), 2);
        }
        ASSERT_EQ(t[0].phase, SMP_MESH_DFU_PHASE_APPLYING);
        json_decref(control(&sim, "reset 0"));
        wait_booted(&sim);
        ASSERT_EQ(dfd_get(s).phase, SMP_MESH_DFD_PHASE_IDLE);
        sleep_ms(100);                          /* the targets' 50 ms reboot */
        target_version(&sim, 0x0100, version, sizeof(version));
        ASSERT_STREQ(version, "2.0.0+0");

        smp_session_free(s);
        sim_stop(&sim);
}

/* Shell management exists on the Distributor only, and only while it runs
 * the Distributor firmware. */
static void test_no_shell_elsewhere(void) {
        struct sim sim;
        struct shell r = { 0 };

        sim_start(&sim, "--boot-ms", "20", "--swap-ms", "20", NULL);
        struct smp_session *other = session_open(&sim, 1);
        ASSERT_OK(smp_shell_exec_line(other, "mesh models dfd get", NULL, on_shell, &r, NULL));
        run_until(&r.done);
        ASSERT_EQ(r.error, -EREMOTEIO);
        ASSERT_TRUE(r.status.has_rc);
        ASSERT_EQ(r.status.rc, SMP_MGMT_ERR_ENOTSUP);
        smp_session_free(other);

        /* the trap of slot 1: test it and reset, and the Distributor swaps
         * itself into the targets' firmware */
        struct smp_session *s = session_open(&sim, 0);
        size_t len;
        uint8_t *img = image_build(2, 3000, &len);
        upload(s, img, len);
        struct mcuboot_image *parsed;
        ASSERT_OK(mcuboot_image_parse(img, len, &parsed, NULL));
        char hex[65];
        hex_encode(parsed->sha256_tlv, 32, hex);
        mcuboot_image_free(parsed);
        free(img);
        r = sh(s, "mesh models dfd get");       /* still a Distributor */
        ASSERT_EQ(r.ret, 0);
        smp_session_free(s);
        /* mark slot 1 for test, then reset */
        s = session_open(&sim, 0);
        uint8_t body[64], hash[32];
        struct smp_cbor_writer w;
        for (int i = 0; i < 32; i++) {
                unsigned v;
                ASSERT_EQ(sscanf(hex + 2 * i, "%2x", &v), 1);
                hash[i] = (uint8_t) v;
        }
        const struct smp_img_state_write_req req = { .hash = smp_cbor_slice_make(hash, 32) };
        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_img_state_write_req_encode(&w, &req));
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE, .group = SMP_GROUP_IMAGE, .id = SMP_IMG_CMD_STATE,
                .body = body, .body_len = w.len,
        };
        struct answer a = { 0 };
        ASSERT_OK(smp_session_send(s, &rp, on_answer, &a, NULL));
        run_until(&a.done);
        ASSERT_EQ(a.error, 0);
        ASSERT_TRUE(!smp_status_failed(&a.status));
        smp_session_free(s);
        json_decref(control(&sim, "reset 0"));
        wait_booted(&sim);
        sleep_ms(100);
        s = session_open(&sim, 0);
        struct shell gone = { 0 };
        ASSERT_OK(smp_shell_exec_line(s, "mesh models dfd get", NULL, on_shell, &gone, NULL));
        run_until(&gone.done);
        ASSERT_EQ(gone.error, -EREMOTEIO);
        ASSERT_EQ(gone.status.rc, SMP_MGMT_ERR_ENOTSUP);
        json_t *st = control(&sim, "mesh-state 0");
        ASSERT_TRUE(json_is_false(json_object_get(st, "active")));
        json_decref(st);
        smp_session_free(s);
        sim_stop(&sim);
}

static void test_setup(void) {
        ctx = test_context_new();
        ASSERT_OK(sd_event_new(&event));
        signal(SIGPIPE, SIG_IGN);
}

static void test_teardown(void) {
        event = sd_event_unref(event);
        smp_context_unref(ctx);
}

TEST_MAIN(TEST(test_setup), TEST(test_one_target), TEST(test_eight_targets_verify_then_apply),
          TEST(test_small_shell_buffers), TEST(test_zephyr_34_wording), TEST(test_later_wording_traps),
          TEST(test_legacy_rc), TEST(test_faults_and_redrive), TEST(test_metadata_check), TEST(test_distributor_reset),
          TEST(test_no_shell_elsewhere), TEST(test_teardown))
