/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loading libcrypto on first use (libcrypto-dlopen.h says why).
 *
 * The sym_* pointers and the load's result are process-wide, like the
 * library they point into: they are written once, under pthread_once(),
 * before any caller can read them, and never change after.  The handle
 * is never closed: EVP_PKEYs and OpenSSL's own state live in the library.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "libcrypto-dlopen.h"
#include "util.h"

#define LIBCRYPTO_DEFINE_SYM(name) typeof(name) *sym_##name = NULL;
LIBCRYPTO_FUNCTIONS(LIBCRYPTO_DEFINE_SYM)
#undef LIBCRYPTO_DEFINE_SYM

static pthread_once_t libcrypto_once = PTHREAD_ONCE_INIT;
static int libcrypto_result = -ELIBACC;

static void libcrypto_load(void) {
        void *dl = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return;

        /* Resolved into locals first: the sym_* pointers are set all
         * together or not at all. */
        struct {
                const char *name;
                void **slot;
                void *value;
        } syms[] = {
#define LIBCRYPTO_SYM_ROW(name) { #name, (void **) &sym_##name, NULL },
                LIBCRYPTO_FUNCTIONS(LIBCRYPTO_SYM_ROW)
#undef LIBCRYPTO_SYM_ROW
        };
        for (size_t i = 0; i < ELEMENTSOF(syms); i++) {
                syms[i].value = dlsym(dl, syms[i].name);
                if (!syms[i].value) {
                        dlclose(dl);
                        return;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(syms); i++)
                *syms[i].slot = syms[i].value;
        libcrypto_result = 0;
}

int libcrypto_dlopen(void) {
        int r = pthread_once(&libcrypto_once, libcrypto_load);
        if (r != 0)
                return -r;
        return libcrypto_result;
}
