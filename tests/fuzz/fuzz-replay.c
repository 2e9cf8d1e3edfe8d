/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main() for a fuzz target in a build without libFuzzer (gcc, the normal
 * and the ASan builds): runs LLVMFuzzerTestOneInput once on every file
 * named, and on every file in every directory named, in name order.  So
 * each seed and each finding kept in tests/fuzz/corpus/ is a regression
 * test of every build ("meson test --suite fuzz"); a target's assertions
 * abort as they do under libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Larger than any input a target reads whole. */
#define INPUT_MAX (4u * 1024u * 1024u)

static int run_file(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        if (st.st_size > INPUT_MAX) {
                fprintf(stderr, "%s: larger than %u bytes\n", path, INPUT_MAX);
                close(fd);
                return -1;
        }
        /* Exactly the input's size, so that reading past it is caught
         * where a sanitizer runs. */
        size_t size = (size_t) st.st_size;
        uint8_t *data = malloc(size ? size : 1);
        size_t got = 0;
        while (data && got < size) {
                ssize_t n = read(fd, data + got, size - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        close(fd);
        if (!data || got != size) {
                fprintf(stderr, "%s: cannot read\n", path);
                free(data);
                return -1;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
        unsigned runs = 0;
        int failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed |= run_file(argv[i]) < 0;
                        runs++;
                        continue;
                }
                struct dirent **names;
                int n = scandir(argv[i], &names, NULL, by_name);
                if (n < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                for (int j = 0; j < n; j++) {
                        char path[4096];
                        if (names[j]->d_name[0] != '.' &&
                            snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name) < (int) sizeof(path) &&
                            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                                failed |= run_file(path) < 0;
                                runs++;
                        }
                        free(names[j]);
                }
                free(names);
        }
        printf("%u input(s) run\n", runs);
        return failed;
}
