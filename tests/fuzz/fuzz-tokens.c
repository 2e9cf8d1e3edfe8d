/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST tokens file: every token handed out is inside the input,
 * trimmed, not a comment, within CONFIG_TOKEN_MAX and free of control
 * characters but tabs. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "log.h"

int smpgwd_log_max_level = -1;
bool smpgwd_log_to_journal = false;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
        const char *begin, *end;
        size_t n, bytes;
};

static int on_token(const char *token, size_t len, void *userdata) {
        struct seen *s = userdata;

        assert(token >= s->begin && token + len <= s->end);
        assert(len > 0 && len <= CONFIG_TOKEN_MAX);
        assert(token[0] != '#' && token[0] != ' ' && token[len - 1] != ' ');
        for (size_t i = 0; i < len; i++)
                assert((unsigned char) token[i] >= ' ' || token[i] == '\t');
        s->n++;
        s->bytes += len;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct seen s = { (const char *) data, (const char *) data + size, 0, 0 };

        if (size > CONFIG_TOKENS_FILE_MAX)
                return 0;
        if (config_tokens_parse("fuzz-tokens", (const char *) data, size, on_token, &s) >= 0)
                assert(s.bytes <= size);
        return 0;
}
