/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A main() for the fuzz targets where there is no libFuzzer (gcc, every
 * normal build): runs LLVMFuzzerTestOneInput() once over each file of the
 * seed corpus directories given, so every build checks that the seeds
 * (and the crashes once found, kept as seeds) still go through, under
 * ASan when the build has it.  Prints TAP.  A directory that does not
 * exist is a SKIP with the reason, not a pass over nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Larger inputs are not seeds; the targets bound what they read anyway. */
#define REPLAY_INPUT_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv) {
        unsigned n = 0;

        for (int i = 1; i < argc; i++) {
                DIR *d = opendir(argv[i]);
                if (!d) {
                        printf("1..0 # SKIP no seed corpus %s: %s\n", argv[i], strerror(errno));
                        return EXIT_SUCCESS;
                }
                char **names = NULL;
                size_t n_names = 0;
                for (struct dirent *de; (de = readdir(d));) {
                        if (de->d_name[0] == '.')
                                continue;
                        char **p = realloc(names, (n_names + 1) * sizeof(*names));
                        if (!p || !(p[n_names] = strdup(de->d_name)))
                                abort();
                        names = p;
                        n_names++;
                }
                closedir(d);
                /* One order on every machine, so a failure names the same seed. */
                qsort(names, n_names, sizeof(*names), name_cmp);
                for (size_t k = 0; k < n_names; k++) {
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]);
                        FILE *f = fopen(path, "rb");
                        if (!f) {
                                printf("not ok %u - %s: %s\n", ++n, path, strerror(errno));
                                return EXIT_FAILURE;
                        }
                        uint8_t *buf = malloc(REPLAY_INPUT_MAX);
                        if (!buf)
                                abort();
                        size_t len = fread(buf, 1, REPLAY_INPUT_MAX, f);
                        fclose(f);
                        /* An exact copy, so ASan sees reads past the input. */
                        uint8_t *input = malloc(len ? len : 1);
                        if (!input)
                                abort();
                        memcpy(input, buf, len);
                        free(buf);
                        (void) LLVMFuzzerTestOneInput(input, len);
                        free(input);
                        printf("ok %u - %s\n", ++n, names[k]);
                        free(names[k]);
                }
                free(names);
        }
        printf("1..%u\n", n);
        return EXIT_SUCCESS;
}
