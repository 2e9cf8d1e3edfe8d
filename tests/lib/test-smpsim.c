/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-smpsim.h"
#include "test-util.h"

#define READY_TIMEOUT_MSEC 10000
#define ARGS_MAX 48

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

uint16_t test_free_udp_ports(unsigned n, unsigned extra) {
        for (int attempt = 0; attempt < 100; attempt++) {
                int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(a);
                ASSERT_TRUE(fd >= 0);
                ASSERT_OK(bind(fd, (struct sockaddr *) &a, sizeof(a)));
                ASSERT_OK(getsockname(fd, (struct sockaddr *) &a, &len));
                close(fd);
                uint16_t p = ntohs(a.sin_port);
                if (p < 1024 || p > 65535 - n - extra)
                        continue;
                bool ok = true;
                for (unsigned i = 0; i < n + extra && ok; i++)
                        ok = udp_port_free((uint16_t) (p + i));
                if (ok)
                        return p;
        }
        abort();
}

/* Reads one line from fd, READY_TIMEOUT_MSEC at most. */
static void read_line(int fd, char *line, size_t size) {
        size_t got = 0;
        while (got < size - 1) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ASSERT_EQ(poll(&p, 1, READY_TIMEOUT_MSEC), 1);
                ASSERT_EQ(read(fd, line + got, 1), 1);
                if (line[got] == '\n')
                        break;
                got++;
        }
        line[got] = 0;
}

void test_smpsim_start(struct test_smpsim *s, const struct test_smpsim_options *o, ...) {
        va_list ap;
        va_start(ap, o);
        test_smpsim_startv(s, o, ap);
        va_end(ap);
}

void test_smpsim_startv(struct test_smpsim *s, const struct test_smpsim_options *o, va_list ap) {
        const char *smpsim = getenv("SMPSIM");
        const char *argv[ARGS_MAX];
        char count[16], udp[64], coap[64], serial[96];
        size_t n = 0;
        int out[2];

        ASSERT_TRUE(smpsim);
        memset(s, 0, sizeof(*s));
        s->count = o->count ? o->count : 1;
        snprintf(s->dir, sizeof(s->dir), "/tmp/test-smpsim-XXXXXX");
        ASSERT_TRUE(mkdtemp(s->dir));
        snprintf(s->control, sizeof(s->control), "%s/control", s->dir);
        snprintf(count, sizeof(count), "%u", s->count);

        argv[n++] = smpsim;
        argv[n++] = "--count";
        argv[n++] = count;
        argv[n++] = "--control";
        argv[n++] = s->control;
        if (o->udp) {
                s->udp_port = test_free_udp_ports(s->count, o->udp_free_above);
                snprintf(udp, sizeof(udp), "127.0.0.1:%u", s->udp_port);
                argv[n++] = "--udp";
                argv[n++] = udp;
        }
        if (o->coap) {
                s->coap_port = test_free_udp_ports(s->count, 0);
                snprintf(coap, sizeof(coap), "127.0.0.1:%u", s->coap_port);
                argv[n++] = "--coap";
                argv[n++] = coap;
        }
        if (o->serial) {
                snprintf(serial, sizeof(serial), "%s/tty", s->dir);
                argv[n++] = "--serial";
                argv[n++] = serial;
        }
        if (o->ble) {
                argv[n++] = "--ble";
                argv[n++] = o->ble;
        }
        for (const char *const *a = o->args; a && *a; a++) {
                ASSERT_TRUE(n < ARGS_MAX - 1);
                argv[n++] = *a;
        }
        for (const char *a; (a = va_arg(ap, const char *));) {
                ASSERT_TRUE(n < ARGS_MAX - 1);
                argv[n++] = a;
        }
        argv[n] = NULL;

        ASSERT_OK(pipe2(out, O_CLOEXEC));
        s->pid = fork();
        ASSERT_TRUE(s->pid >= 0);
        if (s->pid == 0) {
                /* Gone with the test, also when an assertion aborts it. */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(out[1], STDOUT_FILENO);
                execv(smpsim, (char **) argv);
                _exit(127);
        }
        close(out[1]);
        char line[64];
        read_line(out[0], line, sizeof(line));
        close(out[0]);
        ASSERT_STREQ(line, "ready");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void remove_dir(struct test_smpsim *s) {
        (void) nftw(s->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        s->pid = 0;
}

void test_smpsim_stop(struct test_smpsim *s) {
        int status;
        ASSERT_OK(kill(s->pid, SIGTERM));
        ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        remove_dir(s);
}

void test_smpsim_kill(struct test_smpsim *s) {
        int status;
        ASSERT_OK(kill(s->pid, SIGKILL));
        ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
        remove_dir(s);
}

void test_smpsim_control(const struct test_smpsim *s, const char *cmd, char *buf, size_t size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->control);
        ASSERT_OK(connect(fd, (struct sockaddr *) &sa, sizeof(sa)));
        ASSERT_EQ(write(fd, cmd, strlen(cmd)), (ssize_t) strlen(cmd));
        ASSERT_EQ(write(fd, "\n", 1), 1);
        read_line(fd, buf, size);
        close(fd);
}

void test_smpsim_tty(const struct test_smpsim *s, unsigned index, char *buf, size_t size) {
        char link[128], *real;
        snprintf(link, sizeof(link), "%s/tty/smpsim-%04u", s->dir, index);
        real = realpath(link, NULL);
        ASSERT_TRUE(real);
        ASSERT_TRUE(strncmp(real, "/dev/", 5) == 0);
        snprintf(buf, size, "%s", real);
        free(real);
}
