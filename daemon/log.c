/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Every entry names its caller's place (log_internal()), never ours. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"
#include "manager.h"

void log_setup(int max_level) {
        smpgwd_log_max_level = max_level;
        /* $JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected
         * stderr to; only when it matches is stderr the journal (a child
         * that inherited the variable but not the fd must not use it). */
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;
        smpgwd_log_to_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) >= 0 &&
                                (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* __FILE__ as the build spells it ("../daemon/job.c"): the path in the
 * source tree is what a reader of CODE_FILE= can open. */
static const char *source_path(const char *file) {
        while (strncmp(file, "../", 3) == 0)
                file += 3;
        return file;
}

int log_internal(int prio, int error, const char *file, int line, const char *func, const char *message_id,
                 const struct device *d, const struct job *j, const char *image_id, const char *fmt, ...) {
        int saved_errno = errno;
        char text[1024], ctx[320] = "";
        va_list ap;

        if (prio > smpgwd_log_max_level)
                return error;
        /* %m means the error given, not whatever errno happens to be. */
        errno = error < 0 ? -error : error;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);

        uint64_t device_id = d ? d->id : j ? j->device_id : 0;
        const char *conn = d ? d->conn : NULL;
        if (j && !image_id)
                image_id = j->image_id;
        if (j)
                snprintf(ctx, sizeof(ctx), "job %" PRIu64 " (device %" PRIu64 "): ", j->id, j->device_id);
        else if (d)
                snprintf(ctx, sizeof(ctx), "device %" PRIu64 " %s: ", d->id, d->conn ? d->conn : "");

        if (smpgwd_log_to_journal) {
                char f_msg[sizeof(ctx) + sizeof(text) + 16], f_prio[16], f_id[48], f_dev[64], f_conn[300],
                        f_job[64], f_img[96], f_rollout[64], f_errno[32], f_file[256], f_line[32];
                struct iovec iov[11];
                size_t n = 0;
#define IOV_ADD(buf, ...)                                                         \
        do {                                                                      \
                snprintf(buf, sizeof(buf), __VA_ARGS__);                          \
                iov[n++] = (struct iovec) { .iov_base = buf, .iov_len = strlen(buf) }; \
        } while (0)
                IOV_ADD(f_msg, "MESSAGE=%s%s", ctx, text);
                IOV_ADD(f_prio, "PRIORITY=%d", prio);
                iov[n++] = (struct iovec) { .iov_base = (char *) "SYSLOG_IDENTIFIER=smpgwd", .iov_len = 24 };
                if (message_id)
                        IOV_ADD(f_id, "MESSAGE_ID=%s", message_id);
                if (device_id)
                        IOV_ADD(f_dev, "DEVICE_ID=%" PRIu64, device_id);
                if (conn)
                        IOV_ADD(f_conn, "DEVICE_CONN=%s", conn);
                if (j)
                        IOV_ADD(f_job, "JOB_ID=%" PRIu64, j->id);
                if (image_id)
                        IOV_ADD(f_img, "IMAGE_ID=%s", image_id);
                if (j && j->rollout_id)
                        IOV_ADD(f_rollout, "ROLLOUT_ID=%" PRIu64, j->rollout_id);
                if (error)
                        IOV_ADD(f_errno, "ERRNO=%d", error < 0 ? -error : error);
#undef IOV_ADD
                /* The caller's place, not this function's: the plain
                 * sd_journal_sendv() macro would name log.c every time. */
                snprintf(f_file, sizeof(f_file), "CODE_FILE=%s", source_path(file));
                snprintf(f_line, sizeof(f_line), "CODE_LINE=%d", line);
                (void) sd_journal_sendv_with_location(f_file, f_line, func, iov, (int) n);
        } else
                fprintf(stderr, "smpgwd: %s%s\n", ctx, text);
        errno = saved_errno;
        return error;
}
