/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The update procedure in phases (smp-update.h) against smpsim over real
 * UDP sockets, each phase on a session of its own that is freed from
 * inside the phase's done callback, as a job scheduler holding few links
 * would do:
 *   - stage only, the device left alone, activate later, verify → updated;
 *   - verify before the device is back → -EAGAIN (the device answering
 *     with its slot still pending, then silent while it swaps), later
 *     updated, with the swap time measured;
 *   - devices that revert and that reject the image → reverted;
 *   - test-only → testing, confirm-only → updated (a permanent swap);
 *   - a lost reset: verify resets again after 5 s of a pending slot, and
 *     gives up (stuck) after 3 resets;
 *   - a lost confirm, or a lost read after it: sent again, though the
 *     session's retries are 0 (for a device that may still be rebooting);
 *   - the checkpoint across processes killed with SIGKILL: stage in one,
 *     activate in another, verify here; and an activate killed before it
 *     could keep its checkpoint, run again after the reboot;
 *   - the one-shot smp_update_start(), now made of the phases: the steps
 *     its callers saw before, once each, and it holds its session through
 *     the swap where the phases do not;
 *   - the round trips each phase holds its link for.
 *
 * Needs $SMPSIM and $SMPGW_PLUGIN_DIR (meson sets both).
 *
 * Also a measurement, not run by meson: how long one device's update
 * holds its link, one-shot against phased, with a swap of SWAP_MS:
 *   test-smp-update-phases --measure SWAP_MS [IMAGE_BYTES [BANDWIDTH]]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-update.h"
#include "test-context.h"
#include "test-util.h"

#define PHASE_WAIT_USEC (30u * 1000u * 1000u)

static sd_event *event;
static struct smp_context *ctx;

/* ---- smpsim ---- */

struct sim {
        pid_t pid;
        uint16_t port;          /* first device's UDP port */
        char dir[64];           /* control socket */
        int control;
};

static bool udp_port_free(uint16_t port) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {
                .sin_family = AF_INET,
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                .sin_port = htons(port),
        };
        ASSERT_TRUE(fd >= 0);
        bool ok = bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0;
        close(fd);
        return ok;
}

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
                for (unsigned i = 0; i < n && ok; i++)
                        ok = udp_port_free((uint16_t) (p + i));
                if (ok)
                        return p;
        }
        abort();
}

/* Starts smpsim with `count` UDP devices, a control socket and args
 * (NULL-terminated). */
static void sim_start(struct sim *s, unsigned count, const char *const *args) {
        const char *smpsim = getenv("SMPSIM");
        char endpoint[64], count_str[16], control[96];
        const char *argv[64];
        size_t n = 0;
        int out[2];

        ASSERT_TRUE(smpsim);
        s->port = free_udp_ports(count);
        snprintf(s->dir, sizeof(s->dir), "/tmp/test-update-phases-XXXXXX");
        ASSERT_TRUE(mkdtemp(s->dir));
        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", s->port);
        snprintf(count_str, sizeof(count_str), "%u", count);
        snprintf(control, sizeof(control), "%s/control", s->dir);
        argv[n++] = smpsim;
        argv[n++] = "--udp";
        argv[n++] = endpoint;
        argv[n++] = "--count";
        argv[n++] = count_str;
        argv[n++] = "--control";
        argv[n++] = control;
        for (; args && *args; args++) {
                ASSERT_TRUE(n < ELEMENTSOF(argv) - 1);
                argv[n++] = *args;
        }
        argv[n] = NULL;

        ASSERT_OK(pipe2(out, O_CLOEXEC));
        s->pid = fork();
        ASSERT_TRUE(s->pid >= 0);
        if (s->pid == 0) {
                /* a test that aborts takes the simulator with it */
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

        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", control);
        s->control = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(s->control >= 0);
        ASSERT_OK(connect(s->control, (struct sockaddr *) &a, sizeof(a)));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void sim_stop(struct sim *s) {
        int status;
        close(s->control);
        ASSERT_OK(kill(s->pid, SIGTERM));
        ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        (void) nftw(s->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* One command on the control socket; its one-line JSON answer in buf. */
static void sim_control(struct sim *s, const char *cmd, char *buf, size_t size) {
        size_t got = 0;
        ASSERT_EQ(write(s->control, cmd, strlen(cmd)), (ssize_t) strlen(cmd));
        ASSERT_EQ(write(s->control, "\n", 1), 1);
        while (got < size - 1) {
                struct pollfd p = { .fd = s->control, .events = POLLIN };
                ASSERT_EQ(poll(&p, 1, 10000), 1);
                ASSERT_EQ(read(s->control, buf + got, 1), 1);
                if (buf[got] == '\n')
                        break;
                got++;
        }
        buf[got] = 0;
        ASSERT_TRUE(strstr(buf, "\"ok\":true"));
}

/* A number from the device's `state` answer ("boot_count", "resets"). */
static long sim_state_number(struct sim *s, unsigned dev, const char *key) {
        char cmd[32], buf[8192], pattern[64];
        snprintf(cmd, sizeof(cmd), "state %u", dev);
        sim_control(s, cmd, buf, sizeof(buf));
        snprintf(pattern, sizeof(pattern), "\"%s\":", key);
        const char *at = strstr(buf, pattern);
        ASSERT_TRUE(at);
        return strtol(at + strlen(pattern), NULL, 10);
}

static bool sim_rebooting(struct sim *s, unsigned dev) {
        char cmd[32], buf[8192];
        snprintf(cmd, sizeof(cmd), "state %u", dev);
        sim_control(s, cmd, buf, sizeof(buf));
        return strstr(buf, "\"rebooting\":true") != NULL;
}

static void conn_of(const struct sim *s, unsigned dev, char *buf, size_t size) {
        snprintf(buf, size, "udp:127.0.0.1:%u", s->port + dev);
}

/* ---- loop and images ---- */

static uint64_t now_usec(void) {
        uint64_t t;
        ASSERT_OK(sd_event_now(event, CLOCK_MONOTONIC, &t));
        return t;
}

static void run_for(uint64_t usec) {
        uint64_t now = now_usec(), until = now + usec;
        while (now < until) {
                ASSERT_OK(sd_event_run(event, until - now));
                now = now_usec();
        }
}

static bool run_until(const bool *done, uint64_t usec) {
        uint64_t start = now_usec(), now = start;
        while (!*done && now - start < usec) {
                ASSERT_OK(sd_event_run(event, usec - (now - start)));
                now = now_usec();
        }
        return *done;
}

struct image {
        uint8_t *data;
        size_t len;
        uint8_t hash[32];
};

static void image_make(struct image *img, uint8_t major, size_t body_size, uint32_t seed) {
        uint8_t *body = malloc(body_size);
        struct mcuboot_image *parsed;
        uint64_t x = seed;

        ASSERT_TRUE(body);
        for (size_t i = 0; i < body_size; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                body[i] = (uint8_t) (x >> 56);
        }
        const struct mcuboot_build_params p = {
                .version = { .major = major },
                .body = body,
                .body_size = body_size,
        };
        ASSERT_OK(mcuboot_image_build(&p, &img->data, &img->len));
        free(body);
        ASSERT_OK(mcuboot_image_parse(img->data, img->len, &parsed, NULL));
        ASSERT_TRUE(parsed->sha256_tlv);
        memcpy(img->hash, parsed->sha256_tlv, 32);
        mcuboot_image_free(parsed);
}

static void image_free(struct image *img) {
        free(img->data);
        *img = (struct image) {};
}

/* ---- running one phase on a session of its own ---- */

struct phase_run {
        struct smp_session *session;
        bool done;
        struct smp_update_phase_result result;
        enum smp_update_step steps[16];
        size_t n_steps;
};

/* The device loses the request of one step once (phase(), from lose_*). */
static struct sim *lose_sim;
static unsigned lose_dev;
static enum smp_update_step lose_step = _SMP_UPDATE_STEP_MAX;
static unsigned lost;

static void sim_control(struct sim *s, const char *cmd, char *buf, size_t size);

static int on_lose_over(sd_event_source *src, uint64_t usec, void *userdata) {
        char cmd[32], buf[256];
        snprintf(cmd, sizeof(cmd), "clear-faults %u", lose_dev);
        sim_control(lose_sim, cmd, buf, sizeof(buf));
        return 0;
}

static void on_step(struct smp_update_phase_run *r, enum smp_update_step step, void *userdata) {
        struct phase_run *run = userdata;
        ASSERT_TRUE(run->n_steps < ELEMENTSOF(run->steps));
        run->steps[run->n_steps++] = step;
        if (step == lose_step && lost == 0) {
                /* the step's request leaves after this returns: the device
                 * drops what comes in the next 300 ms, far less than the
                 * session's timeout */
                char cmd[48], buf[256];
                snprintf(cmd, sizeof(cmd), "fault %u drop=1", lose_dev);
                sim_control(lose_sim, cmd, buf, sizeof(buf));
                lost++;
                ASSERT_OK(
                        sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, 300 * 1000, 1000, on_lose_over, NULL));
        }
}

static void on_done(struct smp_update_phase_run *r, const struct smp_update_phase_result *result, void *userdata) {
        struct phase_run *run = userdata;
        ASSERT_TRUE(!run->done);
        run->done = true;
        run->result = *result;
        run->result.status.rsn = (struct smp_cbor_slice) {}; /* borrowed from the answer */
        /* The scheduler's way: the link goes as soon as the phase ends. */
        run->session = smp_session_free(run->session);
}

/* Runs one phase on a new session to dev; the session is freed inside
 * done.  Returns the start's error, or the result's. */
static int phase(const struct sim *sim, unsigned dev, const struct smp_update_phase_params *params,
                 struct phase_run *run) {
        char conn[64];
        struct smp_update_phase_params p = *params;
        int e;

        *run = (struct phase_run) {};
        conn_of(sim, dev, conn, sizeof(conn));
        ASSERT_OK(smp_session_open(ctx, event, conn, &run->session));
        /* a rebooting device costs one short request per verify */
        smp_session_set_retries(run->session, 0);
        p.step = on_step;
        p.done = on_done;
        p.userdata = run;
        e = smp_update_phase_start(run->session, &p, NULL);
        if (e < 0) {
                run->session = smp_session_free(run->session);
                return e;
        }
        ASSERT_TRUE(!run->done); /* never from inside the start */
        ASSERT_TRUE(run_until(&run->done, PHASE_WAIT_USEC));
        ASSERT_TRUE(run->session == NULL);
        return run->result.error;
}

static void assert_steps(const struct phase_run *run, const enum smp_update_step *want, size_t n) {
        if (run->n_steps != n) {
                for (size_t i = 0; i < run->n_steps; i++)
                        fprintf(stderr, "step %zu: %s\n", i, smp_update_step_to_string(run->steps[i]));
        }
        ASSERT_EQ(run->n_steps, n);
        for (size_t i = 0; i < n; i++)
                ASSERT_STREQ(smp_update_step_to_string(run->steps[i]), smp_update_step_to_string(want[i]));
}

static int stage(const struct sim *sim, unsigned dev, const struct image *img, enum smp_update_mode mode,
                 struct phase_run *run) {
        const struct smp_update_phase_params p = {
                .phase = SMP_UPDATE_PHASE_STAGE,
                .data = img->data,
                .len = img->len,
                .mode = mode,
        };
        return phase(sim, dev, &p, run);
}

/* Activate and verify need only the checkpoint. */
static int phase_cp(const struct sim *sim, unsigned dev, enum smp_update_phase which,
                    const struct smp_update_checkpoint *cp, struct phase_run *run) {
        const struct smp_update_checkpoint copy = *cp; /* cp may be in *run, which phase() clears */
        const struct smp_update_phase_params p = {
                .phase = which,
                .checkpoint = &copy,
        };
        return phase(sim, dev, &p, run);
}

/* Runs verify every interval until it is no longer "not yet".  Returns
 * the number of -EAGAIN answers; *run is the last verify. */
static unsigned verify_until_decided(const struct sim *sim, unsigned dev, const struct smp_update_checkpoint *cp,
                                     uint64_t interval, struct phase_run *run) {
        uint64_t start = now_usec();
        unsigned not_yet = 0;
        for (;;) {
                int e = phase_cp(sim, dev, SMP_UPDATE_PHASE_VERIFY, cp, run);
                if (e != -EAGAIN)
                        return not_yet;
                not_yet++;
                ASSERT_EQ(run->result.next, SMP_UPDATE_PHASE_VERIFY);
                ASSERT_TRUE(now_usec() - start < PHASE_WAIT_USEC);
                run_for(interval);
        }
}

static const struct smp_update_slot *active_slot(const struct smp_update_snapshot *s) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].image == 0 && s->slots[i].active)
                        return &s->slots[i];
        return NULL;
}

static const struct smp_update_slot *find_slot(const struct smp_update_snapshot *s, const uint8_t *hash) {
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].hash_len == 32 && memcmp(s->slots[i].hash, hash, 32) == 0)
                        return &s->slots[i];
        return NULL;
}

/* The "before" every device of the simulator starts with: smpsim's own
 * 1.0.0 image, active and confirmed. */
static void assert_before_is_factory(const struct smp_update_checkpoint *cp) {
        ASSERT_TRUE(cp->has_before);
        const struct smp_update_slot *a = active_slot(&cp->before);
        ASSERT_TRUE(a);
        ASSERT_STREQ(a->version, "1.0.0+0");
        ASSERT_TRUE(a->confirmed);
}

static struct sim sim;
static struct image img;

/* Devices of the shared simulator, one per test. */
enum {
        DEV_STAGE_LATER,
        DEV_NOT_YET,
        DEV_REVERT,
        DEV_REJECT,
        DEV_TEST_ONLY,
        DEV_CONFIRM_ONLY,
        DEV_LOST_RESET,
        DEV_PROCESSES,
        DEV_CRASHED_ACTIVATE,
        DEV_ONESHOT,
        DEV_ROUND_TRIPS,
        DEV_LOST_CONFIRM,
        DEV_COUNT,
};

#define SWAP_MS 400u
#define RESET_MS 150u

/* ---- tests ---- */

static void test_setup(void) {
        static const char *const args[] = {
                "--swap-ms", "400", "--boot-ms", "50", "--reset-ms", "150",
                "--fault", "dev=2:revert", "--fault", "dev=3:reject", NULL,
        };
        ASSERT_OK(sd_event_new(&event));
        ctx = test_context_new();
        sim_start(&sim, DEV_COUNT, args);
        image_make(&img, 2, 24000, 1);
}

static void test_bad_params(void) {
        struct smp_update_checkpoint cp = {};
        struct phase_run run;
        struct image other_img;

        /* stage needs the image; activate and verify a checkpoint */
        struct smp_update_phase_params p = { .phase = SMP_UPDATE_PHASE_STAGE };
        ASSERT_EQ(phase(&sim, 0, &p, &run), -EINVAL);
        p.phase = SMP_UPDATE_PHASE_ACTIVATE;
        ASSERT_EQ(phase(&sim, 0, &p, &run), -EINVAL);
        p.phase = SMP_UPDATE_PHASE_DONE;
        ASSERT_EQ(phase(&sim, 0, &p, &run), -EINVAL);
        /* a file that is no image */
        static const uint8_t junk[64] = { 1 };
        p = (struct smp_update_phase_params) { .phase = SMP_UPDATE_PHASE_STAGE, .data = junk, .len = sizeof(junk) };
        ASSERT_EQ(phase(&sim, 0, &p, &run), -EINVAL);
        /* verify without a "before" snapshot */
        memcpy(cp.new_hash, img.hash, 32);
        ASSERT_EQ(phase_cp(&sim, 0, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -EINVAL);
        /* activate in upload-only mode */
        cp.has_before = true;
        cp.mode = SMP_UPDATE_UPLOAD_ONLY;
        ASSERT_EQ(phase_cp(&sim, 0, SMP_UPDATE_PHASE_ACTIVATE, &cp, &run), -EINVAL);
        /* an image that is not the checkpoint's */
        cp.mode = SMP_UPDATE_TEST_AND_CONFIRM;
        image_make(&other_img, 3, 1000, 2);
        p = (struct smp_update_phase_params) {
                .phase = SMP_UPDATE_PHASE_ACTIVATE, .data = other_img.data, .len = other_img.len, .checkpoint = &cp,
        };
        ASSERT_EQ(phase(&sim, 0, &p, &run), -EINVAL);
        image_free(&other_img);
        ASSERT_EQ(sim_state_number(&sim, 0, "rx_packets"), 0); /* nothing was sent */
}

/* Staged now, activated in a later window: the device runs the old image
 * until then, and staging again uploads nothing. */
static void test_stage_then_activate_later(void) {
        static const enum smp_update_step stage_steps[] = {
                SMP_UPDATE_STEP_READ_STATE, SMP_UPDATE_STEP_UPLOAD, SMP_UPDATE_STEP_CHECK_UPLOAD,
        };
        static const enum smp_update_step activate_steps[] = {
                SMP_UPDATE_STEP_CHECK_UPLOAD, SMP_UPDATE_STEP_MARK, SMP_UPDATE_STEP_RESET,
        };
        static const enum smp_update_step verify_steps[] = {
                SMP_UPDATE_STEP_WAIT_REBOOT, SMP_UPDATE_STEP_CONFIRM, SMP_UPDATE_STEP_VERIFY,
        };
        const unsigned dev = DEV_STAGE_LATER;
        struct phase_run run;

        ASSERT_OK(stage(&sim, dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
        assert_steps(&run, stage_steps, ELEMENTSOF(stage_steps));
        ASSERT_EQ(run.result.phase, SMP_UPDATE_PHASE_STAGE);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPLOADED);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_ACTIVATE);
        ASSERT_TRUE(!run.result.upload_skipped);
        ASSERT_TRUE(run.result.upload.has_match && run.result.upload.match);
        assert_before_is_factory(&run.result.checkpoint);
        ASSERT_MEMEQ(run.result.checkpoint.new_hash, img.hash, 32);
        ASSERT_STREQ(run.result.checkpoint.new_version, "2.0.0+0");
        ASSERT_EQ(run.result.checkpoint.reset_tries, 0);
        const struct smp_update_slot *sl = find_slot(&run.result.after, img.hash);
        ASSERT_TRUE(sl && !sl->active && !sl->pending);
        struct smp_update_checkpoint staged = run.result.checkpoint;

        /* the maintenance window is later: nothing happens meanwhile */
        run_for(1000000);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 0);
        ASSERT_EQ(sim_state_number(&sim, dev, "boot_count"), 1);

        /* staged again, with the checkpoint: nothing to upload, and the
         * "before" is the one the update found */
        const struct smp_update_phase_params again = {
                .phase = SMP_UPDATE_PHASE_STAGE, .data = img.data, .len = img.len, .checkpoint = &staged,
        };
        ASSERT_OK(phase(&sim, dev, &again, &run));
        ASSERT_TRUE(run.result.upload_skipped);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_ACTIVATE);
        assert_before_is_factory(&run.result.checkpoint);

        ASSERT_OK(phase_cp(&sim, dev, SMP_UPDATE_PHASE_ACTIVATE, &staged, &run));
        assert_steps(&run, activate_steps, ELEMENTSOF(activate_steps));
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_VERIFY);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_NONE);
        const struct smp_update_checkpoint *cp = &run.result.checkpoint;
        ASSERT_TRUE(cp->reset_usec > 0 && cp->reset_answered);
        ASSERT_EQ(cp->reset_tries, 1);
        /* it ended at the reset's answer, long before the swap is over */
        ASSERT_TRUE(run.result.elapsed_usec < SWAP_MS * 1000u);
        struct smp_update_checkpoint activated = *cp;

        /* no link while the device swaps */
        run_for((RESET_MS + SWAP_MS + 300) * 1000u);
        ASSERT_EQ(verify_until_decided(&sim, dev, &activated, 200000, &run), 0);
        assert_steps(&run, verify_steps, ELEMENTSOF(verify_steps));
        ASSERT_EQ(run.result.error, 0);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_DONE);
        const struct smp_update_slot *a = active_slot(&run.result.after);
        ASSERT_TRUE(a && a->confirmed);
        ASSERT_MEMEQ(a->hash, img.hash, 32);
        /* the verify came late: the swap time is what this caller saw */
        ASSERT_TRUE(run.result.swap_usec >= (RESET_MS + SWAP_MS) * 1000u);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 1);

        /* once more: up to date at stage */
        ASSERT_OK(stage(&sim, dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UP_TO_DATE);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_DONE);
}

/* Verify while the device has not reset yet (its reset comes RESET_MS
 * after the answer), while it swaps (silent), and once it is back. */
static void test_verify_not_yet(void) {
        const unsigned dev = DEV_NOT_YET;
        struct phase_run run;
        char buf[256];

        sim_control(&sim, "set 1 swap-ms=1500", buf, sizeof(buf));
        ASSERT_OK(stage(&sim, dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
        ASSERT_OK(phase_cp(&sim, dev, SMP_UPDATE_PHASE_ACTIVATE, &run.result.checkpoint, &run));
        struct smp_update_checkpoint cp = run.result.checkpoint;

        /* at once: the device answers, its slot still pending */
        ASSERT_EQ(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -EAGAIN);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_VERIFY);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_NONE);
        const struct smp_update_slot *sl = find_slot(&run.result.after, img.hash);
        ASSERT_TRUE(sl && sl->pending);
        ASSERT_EQ(run.result.checkpoint.reset_tries, 1); /* no second reset */

        /* swapping: no answer */
        while (!sim_rebooting(&sim, dev))
                run_for(20000);
        ASSERT_EQ(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -EAGAIN);
        ASSERT_EQ(run.result.after.n_slots, 0);
        ASSERT_TRUE(run.result.elapsed_usec >= SMP_UPDATE_VERIFY_TIMEOUT_USEC);

        unsigned not_yet = verify_until_decided(&sim, dev, &cp, 250000, &run);
        ASSERT_TRUE(not_yet >= 1);
        ASSERT_EQ(run.result.error, 0);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(run.result.swap_usec >= 1500000u);
        ASSERT_TRUE(run.result.swap_usec < 1500000u + 3000000u);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 1);
}

static void update_phased(unsigned dev, enum smp_update_mode mode, struct phase_run *run) {
        ASSERT_OK(stage(&sim, dev, &img, mode, run));
        ASSERT_EQ(run->result.next, SMP_UPDATE_PHASE_ACTIVATE);
        ASSERT_OK(phase_cp(&sim, dev, SMP_UPDATE_PHASE_ACTIVATE, &run->result.checkpoint, run));
        ASSERT_EQ(run->result.next, SMP_UPDATE_PHASE_VERIFY);
        struct smp_update_checkpoint cp = run->result.checkpoint;
        run_for((RESET_MS + SWAP_MS) * 1000u);
        (void) verify_until_decided(&sim, dev, &cp, 200000, run);
}

static void test_revert(void) {
        struct phase_run run;
        update_phased(DEV_REVERT, SMP_UPDATE_TEST_AND_CONFIRM, &run);
        ASSERT_EQ(run.result.error, 0);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_REVERTED);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_DONE);
        ASSERT_TRUE(!run.result.rejected);
        const struct smp_update_slot *a = active_slot(&run.result.after);
        ASSERT_TRUE(a);
        ASSERT_STREQ(a->version, "1.0.0+0");
        const struct smp_update_slot *sl = find_slot(&run.result.after, img.hash);
        ASSERT_TRUE(sl && !sl->pending);
}

static void test_reject(void) {
        struct phase_run run;
        update_phased(DEV_REJECT, SMP_UPDATE_TEST_AND_CONFIRM, &run);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_REVERTED);
        ASSERT_TRUE(run.result.rejected);
        ASSERT_TRUE(!find_slot(&run.result.after, img.hash));
}

static void test_test_only(void) {
        static const enum smp_update_step verify_steps[] = { SMP_UPDATE_STEP_WAIT_REBOOT };
        struct phase_run run;
        update_phased(DEV_TEST_ONLY, SMP_UPDATE_TEST_ONLY, &run);
        assert_steps(&run, verify_steps, ELEMENTSOF(verify_steps)); /* no confirm */
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_TESTING);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_DONE);
        const struct smp_update_slot *a = active_slot(&run.result.after);
        ASSERT_TRUE(a && !a->confirmed);
        ASSERT_MEMEQ(a->hash, img.hash, 32);

        /* stage sees it under test, and sends the caller to verify */
        ASSERT_OK(stage(&sim, DEV_TEST_ONLY, &img, SMP_UPDATE_TEST_ONLY, &run));
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_TESTING);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_VERIFY);

        /* Another image while this one runs under test: the device keeps
         * its other slot to go back to, and refuses the upload; the
         * refusal is named as such, for the front ends' hint. */
        struct image other_img;
        image_make(&other_img, 4, 1000, 3);
        ASSERT_EQ(stage(&sim, DEV_TEST_ONLY, &other_img, SMP_UPDATE_TEST_ONLY, &run), -EREMOTEIO);
        ASSERT_EQ(run.result.failed_step, SMP_UPDATE_STEP_UPLOAD);
        ASSERT_TRUE(run.result.status.has_err);
        ASSERT_EQ(run.result.status.err_rc, SMP_IMG_ERR_NO_FREE_SLOT);
        const struct smp_update_slot *t =
                smp_update_refused_under_test(&run.result.checkpoint.before, 0, &run.result.status);
        ASSERT_TRUE(t);
        ASSERT_MEMEQ(t->hash, img.hash, 32);
        ASSERT_TRUE(!smp_update_refused_under_test(&run.result.checkpoint.before, 1, &run.result.status));
        /* the same state, another refusal: not this one */
        struct smp_status other_refusal = run.result.status;
        other_refusal.err_rc = SMP_IMG_ERR_INVALID_IMAGE_TOO_LARGE;
        ASSERT_TRUE(!smp_update_refused_under_test(&run.result.checkpoint.before, 0, &other_refusal));
        /* confirmed, it is no longer under test */
        struct smp_update_snapshot confirmed = run.result.checkpoint.before;
        for (size_t i = 0; i < confirmed.n_slots; i++)
                if (confirmed.slots[i].active)
                        confirmed.slots[i].confirmed = true;
        ASSERT_TRUE(!smp_update_refused_under_test(&confirmed, 0, &run.result.status));
        /* with nothing to go back to, the refusal has another reason */
        struct smp_update_snapshot alone = { .n_slots = 1 };
        for (size_t i = 0; i < run.result.checkpoint.before.n_slots; i++)
                if (run.result.checkpoint.before.slots[i].active)
                        alone.slots[0] = run.result.checkpoint.before.slots[i];
        ASSERT_TRUE(alone.slots[0].active && !alone.slots[0].confirmed);
        ASSERT_TRUE(!smp_update_refused_under_test(&alone, 0, &run.result.status));
        ASSERT_TRUE(!smp_update_refused_under_test(NULL, 0, &run.result.status));
        image_free(&other_img);
}

static void test_confirm_only(void) {
        static const enum smp_update_step verify_steps[] = { SMP_UPDATE_STEP_WAIT_REBOOT };
        struct phase_run run;
        update_phased(DEV_CONFIRM_ONLY, SMP_UPDATE_CONFIRM_ONLY, &run);
        /* confirmed before the reset: nothing to confirm after it */
        assert_steps(&run, verify_steps, ELEMENTSOF(verify_steps));
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        const struct smp_update_slot *a = active_slot(&run.result.after);
        ASSERT_TRUE(a && a->confirmed);
        ASSERT_MEMEQ(a->hash, img.hash, 32);
}

/* The device answered verify's first read: it is up, and the confirm is
 * sent again when lost, even on a session whose retries are 0 for the
 * reads of a device that may still be rebooting (phase() sets 0, as
 * smpgwd does for verify).  A lost confirm used to fail the phase
 * (-ETIMEDOUT at confirm), on any lossy link.  (The state read after the
 * confirm, sent with the same retries, goes out only when the confirm's
 * answer does not show the image confirmed; smpsim answers as img_mgmt
 * does, so no case here reaches it.) */
static void test_lost_confirm(void) {
        static const struct {
                unsigned dev;
                enum smp_update_step step;
        } cases[] = {
                { DEV_LOST_CONFIRM, SMP_UPDATE_STEP_CONFIRM },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct phase_run run;
                ASSERT_OK(stage(&sim, cases[i].dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
                ASSERT_OK(phase_cp(&sim, cases[i].dev, SMP_UPDATE_PHASE_ACTIVATE, &run.result.checkpoint, &run));
                struct smp_update_checkpoint cp = run.result.checkpoint;
                run_for((RESET_MS + SWAP_MS) * 1000u);
                lose_sim = &sim;
                lose_dev = cases[i].dev;
                lose_step = cases[i].step;
                lost = 0;
                (void) verify_until_decided(&sim, cases[i].dev, &cp, 200000, &run);
                lose_step = _SMP_UPDATE_STEP_MAX;
                ASSERT_EQ(lost, 1);
                ASSERT_EQ(sim_state_number(&sim, cases[i].dev, "dropped_fault"), 1);
                ASSERT_EQ(run.result.error, 0);
                ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
                const struct smp_update_slot *a = active_slot(&run.result.after);
                ASSERT_TRUE(a && a->confirmed);
                ASSERT_MEMEQ(a->hash, img.hash, 32);
        }
}

static void on_mark_done(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                         size_t len, void *userdata) {
        ASSERT_EQ(error, 0);
        *(bool *) userdata = true;
}

/* Marks the image for test by hand: a device that got the mark, and whose
 * reset got lost. */
static void mark_for_test(unsigned dev) {
        struct smp_session *s;
        struct smp_cbor_writer w;
        uint8_t body[64];
        char conn[64];
        bool done = false;

        conn_of(&sim, dev, conn, sizeof(conn));
        ASSERT_OK(smp_session_open(ctx, event, conn, &s));
        smp_cbor_writer_init(&w, body, sizeof(body));
        const struct smp_img_state_write_req req = { .hash = smp_cbor_slice_make(img.hash, 32) };
        ASSERT_OK(smp_img_state_write_req_encode(&w, &req));
        int n = smp_cbor_writer_finish(&w);
        ASSERT_OK(n);
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE, .group = SMP_GROUP_IMAGE, .id = SMP_IMG_CMD_STATE,
                .body = body, .body_len = (size_t) n,
        };
        ASSERT_OK(smp_session_send(s, &rp, on_mark_done, &done, NULL));
        ASSERT_TRUE(run_until(&done, PHASE_WAIT_USEC));
        smp_session_free(s);
}

static uint64_t realtime_usec(void) {
        uint64_t t;
        ASSERT_OK(sd_event_now(event, CLOCK_REALTIME, &t));
        return t;
}

/* The reset went out but never reached the device: it keeps answering
 * with the slot pending.  Verify resets it again once 5 s passed since the
 * last reset, and gives up after the third. */
static void test_lost_reset(void) {
        const unsigned dev = DEV_LOST_RESET;
        struct phase_run run;

        ASSERT_OK(stage(&sim, dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
        struct smp_update_checkpoint cp = run.result.checkpoint;
        mark_for_test(dev);

        /* the third reset was lost too: stuck, and no fourth */
        cp.reset_tries = SMP_UPDATE_RESET_MAX_TRIES;
        cp.reset_usec = cp.reset_sent_usec = realtime_usec() - 6 * 1000000ull;
        cp.reset_answered = false;
        ASSERT_EQ(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -ETIMEDOUT);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_STUCK);
        ASSERT_EQ(run.result.next, SMP_UPDATE_PHASE_DONE);
        ASSERT_EQ(run.result.failed_step, SMP_UPDATE_STEP_WAIT_REBOOT);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 0);

        /* the first reset lost 6 s ago: verify sends another */
        cp.reset_tries = 1;
        ASSERT_EQ(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -EAGAIN);
        static const enum smp_update_step steps[] = {
                SMP_UPDATE_STEP_WAIT_REBOOT, SMP_UPDATE_STEP_RESET, SMP_UPDATE_STEP_WAIT_REBOOT,
        };
        assert_steps(&run, steps, ELEMENTSOF(steps));
        ASSERT_EQ(run.result.checkpoint.reset_tries, 2);
        ASSERT_TRUE(run.result.checkpoint.reset_sent_usec > cp.reset_sent_usec);
        ASSERT_EQ(run.result.checkpoint.reset_usec, cp.reset_usec); /* the first reset's, kept */
        cp = run.result.checkpoint;
        /* within 5 s of that reset: no third one, however often asked */
        ASSERT_EQ(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run), -EAGAIN);
        ASSERT_EQ(run.result.checkpoint.reset_tries, 2);
        run_for((RESET_MS + SWAP_MS) * 1000u);
        (void) verify_until_decided(&sim, dev, &cp, 200000, &run);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 1);
}

/* ---- across processes ---- */

static const char *self_exe;

static void write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        ASSERT_OK(fsync(fd));
}

static char *read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        ASSERT_TRUE(f);
        char *buf = malloc(1 << 20);
        ASSERT_TRUE(buf);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = 0;
        if (ret_len)
                *ret_len = n;
        return buf;
}

/* The child: runs one phase against CONN with the image in IMAGE and the
 * checkpoint in CP_IN ("-": none), writes the result's checkpoint and a
 * summary line to OUT ("-": writes nothing, the kill comes first), then
 * is killed, as a daemon may be at any time. */
static int child_main(char **argv) {
        const char *which = argv[0], *conn = argv[1], *image_path = argv[2], *cp_in = argv[3], *out = argv[4];
        struct smp_update_checkpoint cp;
        struct phase_run run = {};
        size_t len;

        ASSERT_OK(sd_event_new(&event));
        ctx = test_context_new();
        uint8_t *data = (uint8_t *) read_file(image_path, &len);
        struct smp_update_phase_params p = {
                .phase = smp_update_phase_from_string(which),
                .data = data,
                .len = len,
                .mode = SMP_UPDATE_TEST_AND_CONFIRM,
                .step = on_step,
                .done = on_done,
                .userdata = &run,
        };
        ASSERT_OK(p.phase);
        if (!streq(cp_in, "-")) {
                char *text = read_file(cp_in, NULL);
                text[strcspn(text, "\n")] = 0; /* the checkpoint's line; the summary follows */
                ASSERT_OK(smp_update_checkpoint_parse(text, &cp));
                free(text);
                p.checkpoint = &cp;
        }
        ASSERT_OK(smp_session_open(ctx, event, conn, &run.session));
        ASSERT_OK(smp_update_phase_start(run.session, &p, NULL));
        ASSERT_TRUE(run_until(&run.done, PHASE_WAIT_USEC));
        if (!streq(out, "-")) {
                char line[SMP_UPDATE_CHECKPOINT_STRING_MAX + 128];
                ASSERT_OK(smp_update_checkpoint_format(&run.result.checkpoint, line, SMP_UPDATE_CHECKPOINT_STRING_MAX));
                snprintf(line + strlen(line), sizeof(line) - strlen(line), "\nerror=%d next=%s outcome=%s\n",
                         run.result.error, smp_update_phase_to_string(run.result.next),
                         run.result.outcome == SMP_UPDATE_OUTCOME_NONE
                                 ? "none"
                                 : smp_update_outcome_to_string(run.result.outcome));
                write_file(out, line);
        }
        raise(SIGKILL);
        abort();
}

/* Runs a child (as above) and checks it died of SIGKILL. */
static void child_run(const char *which, unsigned dev, const char *image_path, const char *cp_in, const char *out) {
        char conn[64];
        int status;

        conn_of(&sim, dev, conn, sizeof(conn));
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                const char *argv[] = { self_exe, "--child", which, conn, image_path, cp_in, out, NULL };
                execv(self_exe, (char **) argv);
                _exit(127);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status));
        ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

/* The child's checkpoint line, parsed, and its summary line. */
static void child_result(const char *out, struct smp_update_checkpoint *ret, char *summary, size_t size) {
        char *text = read_file(out, NULL);
        char *nl = strchr(text, '\n');
        ASSERT_TRUE(nl);
        *nl = 0;
        ASSERT_OK(smp_update_checkpoint_parse(text, ret));
        snprintf(summary, size, "%s", nl + 1);
        free(text);
}

static void image_path(char *buf, size_t size) {
        snprintf(buf, size, "%s/image.bin", sim.dir);
        _cleanup_close_ int fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, img.data, img.len), (ssize_t) img.len);
}

/* Stage in one process, activate in another, verify in this one: each
 * killed with SIGKILL right after writing its checkpoint down. */
static void test_checkpoint_across_processes(void) {
        const unsigned dev = DEV_PROCESSES;
        char path[128], cp_stage[128], cp_activate[128], summary[256];
        struct smp_update_checkpoint cp;
        struct phase_run run;

        image_path(path, sizeof(path));
        snprintf(cp_stage, sizeof(cp_stage), "%s/stage.cp", sim.dir);
        snprintf(cp_activate, sizeof(cp_activate), "%s/activate.cp", sim.dir);

        child_run("stage", dev, path, "-", cp_stage);
        child_result(cp_stage, &cp, summary, sizeof(summary));
        ASSERT_STREQ(summary, "error=0 next=activate outcome=uploaded\n");
        assert_before_is_factory(&cp);
        ASSERT_MEMEQ(cp.new_hash, img.hash, 32);

        child_run("activate", dev, path, cp_stage, cp_activate);
        child_result(cp_activate, &cp, summary, sizeof(summary));
        ASSERT_STREQ(summary, "error=0 next=verify outcome=none\n");
        ASSERT_TRUE(cp.reset_usec > 0 && cp.reset_tries == 1 && cp.reset_answered);
        assert_before_is_factory(&cp);

        /* here, with nothing but the checkpoint (no image either) */
        run_for((RESET_MS + SWAP_MS) * 1000u);
        (void) verify_until_decided(&sim, dev, &cp, 200000, &run);
        ASSERT_EQ(run.result.error, 0);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        /* the reset's time crossed the process boundary */
        ASSERT_TRUE(run.result.swap_usec >= (RESET_MS + SWAP_MS) * 1000u);
        ASSERT_TRUE(run.result.swap_usec < 10 * 1000000u);
}

/* Activate killed after it reset the device but before it kept its
 * checkpoint: run again from stage's checkpoint once the device is back,
 * it sees the new image running and sends the caller to verify without a
 * second reset (which would revert the test boot). */
static void test_crashed_activate(void) {
        const unsigned dev = DEV_CRASHED_ACTIVATE;
        char path[128], cp_stage[128], cp_activate[128], summary[256];
        struct smp_update_checkpoint cp;
        struct phase_run run;

        image_path(path, sizeof(path));
        snprintf(cp_stage, sizeof(cp_stage), "%s/stage2.cp", sim.dir);
        snprintf(cp_activate, sizeof(cp_activate), "%s/activate2.cp", sim.dir);
        child_run("stage", dev, path, "-", cp_stage);
        child_run("activate", dev, path, cp_stage, "-");
        /* the device reboots RESET_MS after its answer */
        while (sim_state_number(&sim, dev, "boot_count") < 2 || sim_rebooting(&sim, dev))
                run_for(50000);

        child_run("activate", dev, path, cp_stage, cp_activate);
        child_result(cp_activate, &cp, summary, sizeof(summary));
        ASSERT_STREQ(summary, "error=0 next=verify outcome=none\n");
        ASSERT_EQ(cp.reset_tries, 0);
        ASSERT_EQ(cp.reset_usec, 0);
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 1);

        ASSERT_OK(phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run));
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(run.result.swap_usec, 0); /* unknown: the reset's time was lost */
        ASSERT_EQ(sim_state_number(&sim, dev, "resets"), 1);
}

/* ---- the one-shot procedure, made of the phases ---- */

struct oneshot {
        bool done;
        struct smp_update_result result;
        enum smp_update_step steps[32];
        size_t n_steps;
};

static void on_oneshot_step(struct smp_update *u, enum smp_update_step step, void *userdata) {
        struct oneshot *o = userdata;
        ASSERT_TRUE(o->n_steps < ELEMENTSOF(o->steps));
        o->steps[o->n_steps++] = step;
}

static void on_oneshot_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct oneshot *o = userdata;
        ASSERT_TRUE(!o->done);
        o->done = true;
        o->result = *r;
}

static void test_oneshot(void) {
        static const enum smp_update_step want[] = {
                SMP_UPDATE_STEP_READ_STATE, SMP_UPDATE_STEP_UPLOAD, SMP_UPDATE_STEP_CHECK_UPLOAD,
                SMP_UPDATE_STEP_MARK, SMP_UPDATE_STEP_RESET, SMP_UPDATE_STEP_WAIT_REBOOT,
                SMP_UPDATE_STEP_CONFIRM, SMP_UPDATE_STEP_VERIFY,
        };
        struct smp_session *s;
        struct oneshot o = {};
        char conn[64];

        conn_of(&sim, DEV_ONESHOT, conn, sizeof(conn));
        ASSERT_OK(smp_session_open(ctx, event, conn, &s));
        /* Image 1 in test-and-confirm: Zephyr 3.5+ would refuse its
         * confirm (IMAGE_CONFIRMATION_DENIED) and the image revert; it is
         * refused here, before anything is sent. */
        const struct smp_update_params image1 = {
                .data = img.data,
                .len = img.len,
                .has_image = true,
                .image = 1,
                .done = on_oneshot_done,
                .userdata = &o,
        };
        ASSERT_EQ(smp_update_start(s, &image1, NULL), -EINVAL);
        ASSERT_TRUE(!o.done);
        const struct smp_update_params p = {
                .data = img.data,
                .len = img.len,
                .step = on_oneshot_step,
                .done = on_oneshot_done,
                .userdata = &o,
        };
        uint64_t start = now_usec();
        ASSERT_OK(smp_update_start(s, &p, NULL));
        ASSERT_TRUE(run_until(&o.done, PHASE_WAIT_USEC));
        uint64_t held = now_usec() - start;
        smp_session_free(s);

        ASSERT_EQ(o.result.error, 0);
        ASSERT_EQ(o.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(o.n_steps, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                ASSERT_EQ(o.steps[i], want[i]);
        ASSERT_STREQ(o.result.new_version, "2.0.0+0");
        ASSERT_MEMEQ(o.result.new_hash, img.hash, 32);
        ASSERT_STREQ(active_slot(&o.result.before)->version, "1.0.0+0");
        ASSERT_MEMEQ(active_slot(&o.result.after)->hash, img.hash, 32);
        ASSERT_TRUE(o.result.reboot_usec >= (RESET_MS + SWAP_MS) * 1000u);
        /* the one-shot holds its session through the swap */
        ASSERT_TRUE(held >= (RESET_MS + SWAP_MS) * 1000u);
        ASSERT_TRUE(o.result.elapsed_usec >= (RESET_MS + SWAP_MS) * 1000u);
        ASSERT_EQ(sim_state_number(&sim, DEV_ONESHOT, "resets"), 1);
}

/* The round trips a device's update holds its link for, on a link with
 * a long round trip (RTT_MS): stage asks mcumgr parameters after its
 * state read, not beside it, as a Zephyr device over UDP has two netbufs
 * for requests and answers and refuses one of two requests in flight
 * with ENOMEM (4 round trips for an image of one chunk: read,
 * parameters, the chunk, the check); activate given the state
 * stage read last reads nothing (mark, reset); verify ends with the
 * confirm's answer, which is the state after it (read, confirm); a
 * verify's poll of a device that is not back takes the timeout given. */
#define RTT_MS 400u

static void test_round_trips(void) {
        const unsigned dev = DEV_ROUND_TRIPS;
        struct image one_chunk;
        struct phase_run run;
        char cmd[64], buf[256];

        snprintf(cmd, sizeof(cmd), "set %u latency=%u", dev, RTT_MS / 2);
        sim_control(&sim, cmd, buf, sizeof(buf));
        image_make(&one_chunk, 5, 200, 4);

        ASSERT_OK(stage(&sim, dev, &one_chunk, SMP_UPDATE_TEST_AND_CONFIRM, &run));
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPLOADED);
        ASSERT_EQ(run.result.upload.buf_size, 2048u); /* smpsim's default, asked */
        ASSERT_TRUE(run.result.elapsed_usec >= 4 * RTT_MS * 1000u);
        ASSERT_TRUE(run.result.elapsed_usec < 4 * RTT_MS * 1000u + RTT_MS * 1000u * 3 / 4);
        struct smp_update_snapshot staged_state = run.result.after;
        struct smp_update_checkpoint cp = run.result.checkpoint;

        long before = sim_state_number(&sim, dev, "rx_packets");
        const struct smp_update_phase_params activate = {
                .phase = SMP_UPDATE_PHASE_ACTIVATE,
                .checkpoint = &cp,
                .state = &staged_state,
        };
        ASSERT_OK(phase(&sim, dev, &activate, &run));
        ASSERT_EQ(sim_state_number(&sim, dev, "rx_packets") - before, 2); /* mark, reset */
        cp = run.result.checkpoint;

        /* swapping: a poll not answered ends at the timeout given */
        while (!sim_rebooting(&sim, dev))
                run_for(20000);
        const struct smp_update_phase_params poll = {
                .phase = SMP_UPDATE_PHASE_VERIFY,
                .checkpoint = &cp,
                .verify_timeout_usec = 100000,
        };
        ASSERT_EQ(phase(&sim, dev, &poll, &run), -EAGAIN);
        ASSERT_TRUE(run.result.elapsed_usec >= 100000u && run.result.elapsed_usec < 400000u);

        run_for((SWAP_MS + 300) * 1000u);
        before = sim_state_number(&sim, dev, "rx_packets");
        ASSERT_EQ(verify_until_decided(&sim, dev, &cp, 200000, &run), 0);
        ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_EQ(sim_state_number(&sim, dev, "rx_packets") - before, 2); /* read, confirm */
        const struct smp_update_slot *a = active_slot(&run.result.after);
        ASSERT_TRUE(a && a->confirmed);
        ASSERT_MEMEQ(a->hash, one_chunk.hash, 32);
        image_free(&one_chunk);
}

static void test_teardown(void) {
        sim_stop(&sim);
        image_free(&img);
        ctx = smp_context_unref(ctx);
        event = sd_event_unref(event);
}

/* ---- the measurement (not a test) ---- */

static void measure(unsigned swap_ms, size_t image_bytes, const char *bandwidth) {
        char swap[16], conn[64];
        const char *args[] = {
                "--swap-ms", swap, "--boot-ms", "100", "--reset-ms", "250",
                "--bandwidth", bandwidth, "--latency", "15", NULL,
        };
        struct phase_run run;

        snprintf(swap, sizeof(swap), "%u", swap_ms);
        ASSERT_OK(sd_event_new(&event));
        ctx = test_context_new();
        sim_start(&sim, 3, args);
        image_make(&img, 2, image_bytes, 7);
        printf("swap %u ms, image %zu bytes, link %s bytes/s (0: unlimited), 15 ms one way\n", swap_ms, img.len,
               bandwidth);

        /* one-shot: the session is open from start to done */
        struct smp_session *s;
        struct oneshot o = {};
        conn_of(&sim, 0, conn, sizeof(conn));
        ASSERT_OK(smp_session_open(ctx, event, conn, &s));
        const struct smp_update_params p = {
                .data = img.data, .len = img.len, .done = on_oneshot_done, .userdata = &o,
        };
        uint64_t start = now_usec();
        ASSERT_OK(smp_update_start(s, &p, NULL));
        ASSERT_TRUE(run_until(&o.done, 600 * 1000000ull));
        uint64_t oneshot_held = now_usec() - start;
        smp_session_free(s);
        ASSERT_EQ(o.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        printf("one-shot:          link held %7.2f s (whole update %7.2f s, reboot %6.2f s)\n",
               oneshot_held / 1e6, oneshot_held / 1e6, o.result.reboot_usec / 1e6);

        /* phased, two ways to wait for the reboot: poll with verify every
         * second; or wait the swap time learned from a first device,
         * then poll */
        uint64_t learned = 0;
        for (unsigned dev = 1; dev <= 2; dev++) {
                uint64_t held = 0, t0 = now_usec(), stage_usec, activate_usec;
                unsigned verifies = 0;

                ASSERT_OK(stage(&sim, dev, &img, SMP_UPDATE_TEST_AND_CONFIRM, &run));
                stage_usec = run.result.elapsed_usec;
                ASSERT_OK(phase_cp(&sim, dev, SMP_UPDATE_PHASE_ACTIVATE, &run.result.checkpoint, &run));
                activate_usec = run.result.elapsed_usec;
                held = stage_usec + activate_usec;
                struct smp_update_checkpoint cp = run.result.checkpoint;
                uint64_t verify_usec = 0;
                if (learned)
                        run_for(learned);
                for (;;) {
                        uint64_t v0 = now_usec();
                        int e = phase_cp(&sim, dev, SMP_UPDATE_PHASE_VERIFY, &cp, &run);
                        verify_usec += now_usec() - v0;
                        verifies++;
                        if (e != -EAGAIN)
                                break;
                        run_for(learned ? 200000 : 1000000);
                }
                held += verify_usec;
                ASSERT_EQ(run.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
                printf("phased (%s): link held %7.2f s (stage %.2f, activate %.2f, %u verifies %.2f; "
                       "whole update %.2f s, swap seen %.2f s)\n",
                       learned ? "learned wait" : "poll 1 s    ", held / 1e6, stage_usec / 1e6, activate_usec / 1e6,
                       verifies, verify_usec / 1e6, (now_usec() - t0) / 1e6, run.result.swap_usec / 1e6);
                if (!learned)
                        learned = run.result.swap_usec;
        }
        test_teardown();
}

int main(int argc, char *argv[]) {
        static const struct test_case cases[] = {
                TEST(test_setup),
                TEST(test_bad_params),
                TEST(test_stage_then_activate_later),
                TEST(test_verify_not_yet),
                TEST(test_revert),
                TEST(test_reject),
                TEST(test_test_only),
                TEST(test_confirm_only),
                TEST(test_lost_confirm),
                TEST(test_lost_reset),
                TEST(test_checkpoint_across_processes),
                TEST(test_crashed_activate),
                TEST(test_oneshot),
                TEST(test_round_trips),
                TEST(test_teardown),
        };

        self_exe = "/proc/self/exe";
        if (argc == 7 && streq(argv[1], "--child"))
                return child_main(argv + 2);
        if (argc >= 3 && streq(argv[1], "--measure")) {
                measure((unsigned) strtoul(argv[2], NULL, 10), argc >= 4 ? strtoul(argv[3], NULL, 10) : 65536,
                        argc >= 5 ? argv[4] : "0");
                return 0;
        }
        return test_run_all(cases, ELEMENTSOF(cases));
}
