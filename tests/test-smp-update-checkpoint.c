/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The update checkpoint as one line of text (smp-update.h): every field
 * back as it was, the exact spelling, versions that need encoding, the
 * largest checkpoint within SMP_UPDATE_CHECKPOINT_STRING_MAX, and
 * refusals of anything else, without touching the output.
 */
#include <errno.h>

#include "smpgw/smp-update.h"
#include "test-util.h"

static void slot(struct smp_update_slot *s, uint32_t image, uint32_t n, const char *version, uint8_t fill,
                 const char *flags) {
        *s = (struct smp_update_slot) { .present = true, .image = image, .slot = n, .hash_len = 32 };
        snprintf(s->version, sizeof(s->version), "%s", version);
        memset(s->hash, fill, sizeof(s->hash));
        s->bootable = strchr(flags, 'b');
        s->pending = strchr(flags, 'p');
        s->confirmed = strchr(flags, 'c');
        s->active = strchr(flags, 'a');
        s->permanent = strchr(flags, 'P');
}

static struct smp_update_checkpoint sample(void) {
        struct smp_update_checkpoint cp = {
                .mode = SMP_UPDATE_TEST_AND_CONFIRM,
                .has_before = true,
                .reset_usec = 1700000000123456ull,
                .reset_sent_usec = 1700000000100000ull,
                .reset_tries = 1,
                .reset_answered = true,
        };
        memset(cp.new_hash, 0xab, sizeof(cp.new_hash));
        snprintf(cp.new_version, sizeof(cp.new_version), "2.1.0+5");
        slot(&cp.before.slots[0], 0, 0, "1.0.0+0", 0x11, "bca");
        slot(&cp.before.slots[1], 0, 1, "0.9.0+0", 0x22, "");
        cp.before.n_slots = 2;
        return cp;
}

static void assert_same(const struct smp_update_checkpoint *a, const struct smp_update_checkpoint *b) {
        ASSERT_EQ(a->mode, b->mode);
        ASSERT_MEMEQ(a->new_hash, b->new_hash, 32);
        ASSERT_STREQ(a->new_version, b->new_version);
        ASSERT_EQ(a->has_before, b->has_before);
        ASSERT_EQ(a->reset_usec, b->reset_usec);
        ASSERT_EQ(a->reset_sent_usec, b->reset_sent_usec);
        ASSERT_EQ(a->reset_tries, b->reset_tries);
        ASSERT_EQ(a->reset_answered, b->reset_answered);
        ASSERT_EQ(a->before.n_slots, b->before.n_slots);
        for (size_t i = 0; i < a->before.n_slots; i++) {
                const struct smp_update_slot *x = &a->before.slots[i], *y = &b->before.slots[i];
                ASSERT_EQ(x->present, y->present);
                ASSERT_EQ(x->image, y->image);
                ASSERT_EQ(x->slot, y->slot);
                ASSERT_STREQ(x->version, y->version);
                ASSERT_EQ(x->hash_len, y->hash_len);
                ASSERT_MEMEQ(x->hash, y->hash, x->hash_len);
                ASSERT_EQ(x->bootable, y->bootable);
                ASSERT_EQ(x->pending, y->pending);
                ASSERT_EQ(x->confirmed, y->confirmed);
                ASSERT_EQ(x->active, y->active);
                ASSERT_EQ(x->permanent, y->permanent);
        }
}

static void round_trip(const struct smp_update_checkpoint *cp, char *buf, size_t size) {
        struct smp_update_checkpoint back;
        ASSERT_OK(smp_update_checkpoint_format(cp, buf, size));
        ASSERT_OK(smp_update_checkpoint_parse(buf, &back));
        assert_same(cp, &back);
}

static void test_spelling(void) {
        struct smp_update_checkpoint cp = sample();
        char buf[SMP_UPDATE_CHECKPOINT_STRING_MAX];

        round_trip(&cp, buf, sizeof(buf));
        ASSERT_STREQ(buf,
                     "smpgw-update/1 mode=test-and-confirm "
                     "hash=abababababababababababababababababababababababababababababababab version=2.1.0+5 "
                     "reset=1700000000123456 reset-sent=1700000000100000 reset-tries=1 reset-answered=1 before=2 "
                     "slot=0,0,bca,1.0.0+0,1111111111111111111111111111111111111111111111111111111111111111 "
                     "slot=0,1,-,0.9.0+0,2222222222222222222222222222222222222222222222222222222222222222");

        /* a new update: nothing reset, no "before" yet */
        cp = (struct smp_update_checkpoint) { .mode = SMP_UPDATE_UPLOAD_ONLY };
        round_trip(&cp, buf, sizeof(buf));
        ASSERT_TRUE(strstr(buf, " reset=0 reset-sent=0 reset-tries=0 reset-answered=0 before=-"));
        ASSERT_TRUE(strstr(buf, " version= reset=0"));

        /* a "before" of no slots is not the same as none */
        cp.has_before = true;
        round_trip(&cp, buf, sizeof(buf));
        ASSERT_TRUE(strstr(buf, " before=0"));
}

static void test_largest(void) {
        struct smp_update_checkpoint cp = sample();
        char buf[SMP_UPDATE_CHECKPOINT_STRING_MAX];
        char odd[32];

        /* every version 31 bytes, each needing percent-encoding */
        memset(odd, ' ', sizeof(odd) - 1);
        odd[sizeof(odd) - 1] = 0;
        memcpy(cp.new_version, odd, sizeof(odd));
        cp.mode = SMP_UPDATE_TEST_AND_CONFIRM;
        cp.reset_usec = cp.reset_sent_usec = UINT64_MAX;
        cp.reset_tries = UINT32_MAX;
        for (size_t i = 0; i < SMP_UPDATE_SLOTS_MAX; i++) {
                slot(&cp.before.slots[i], UINT32_MAX, UINT32_MAX, odd, (uint8_t) i, "bpcaP");
                /* and a byte of UTF-8 in each */
                cp.before.slots[i].version[i] = (char) (0xc3 - i);
        }
        cp.before.n_slots = SMP_UPDATE_SLOTS_MAX;
        round_trip(&cp, buf, sizeof(buf));
        ASSERT_TRUE(strlen(buf) < SMP_UPDATE_CHECKPOINT_STRING_MAX);
        ASSERT_TRUE(strstr(buf, "version=%20%20"));
        ASSERT_TRUE(strstr(buf, ",bpcaP,%C3%20"));

        /* too small a buffer: -ENOBUFS and an empty string */
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, strlen(buf)), -ENOBUFS);
        ASSERT_STREQ(buf, "");
        ASSERT_OK(smp_update_checkpoint_format(&cp, buf, sizeof(buf)));

        /* slots that are not present are left out */
        cp.before.slots[1].present = false;
        ASSERT_OK(smp_update_checkpoint_format(&cp, buf, sizeof(buf)));
        ASSERT_TRUE(strstr(buf, " before=3 "));
}

static void test_format_refuses(void) {
        struct smp_update_checkpoint cp = sample();
        char buf[SMP_UPDATE_CHECKPOINT_STRING_MAX];

        cp.mode = _SMP_UPDATE_MODE_MAX;
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, sizeof(buf)), -EINVAL);
        cp = sample();
        cp.before.n_slots = SMP_UPDATE_SLOTS_MAX + 1;
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, sizeof(buf)), -EINVAL);
        cp = sample();
        memset(cp.new_version, 'x', sizeof(cp.new_version)); /* no end: parsing could not give it back */
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, sizeof(buf)), -EINVAL);
        cp = sample();
        cp.before.slots[0].hash_len = 33;
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, sizeof(buf)), -EINVAL);
        ASSERT_EQ(smp_update_checkpoint_format(NULL, buf, sizeof(buf)), -EINVAL);
        ASSERT_EQ(smp_update_checkpoint_format(&cp, buf, 0), -EINVAL);
}

static void test_parse_refuses(void) {
        struct smp_update_checkpoint cp = sample(), untouched, out;
        char good[SMP_UPDATE_CHECKPOINT_STRING_MAX], bad[2 * SMP_UPDATE_CHECKPOINT_STRING_MAX];

        ASSERT_OK(smp_update_checkpoint_format(&cp, good, sizeof(good)));
        /* one change each, made to the good line */
        static const struct {
                const char *from, *to;
        } edits[] = {
                { "smpgw-update/1 ", "smpgw-update/2 " },
                { "smpgw-update/1 ", "smpgw-update/1  " },
                { "mode=test-and-confirm", "mode=sometimes" },
                { "mode=test-and-confirm", "mode=" },
                { " mode=test-and-confirm", "" },
                { "hash=abab", "hash=ABAB" },
                { "hash=abab", "hash=ab" },
                { "hash=abab", "hash=xbab" },
                { "hash=abab", "hash=ababab" },
                { "version=2.1.0+5", "version=2.1.0 5" },
                { "version=2.1.0+5", "version=2.1.0%2B5" },   /* '+' needs no encoding: one spelling */
                { "version=2.1.0+5", "version=2.1.0%00" },
                { "version=2.1.0+5", "version=2.1.0%2" },
                { "version=2.1.0+5", "version=2.1.0/5" },
                { "version=2.1.0+5", "version=0123456789012345678901234567890123" },
                { "reset=1700000000123456", "reset=-1" },
                { "reset=1700000000123456", "reset=01700000000123456" },
                { "reset=1700000000123456", "reset=18446744073709551616" },
                { "reset=1700000000123456", "reset=" },
                { "reset-tries=1", "reset-tries=4294967296" },
                { "reset-tries=1", "reset-tries=1x" },
                { "reset-answered=1", "reset-answered=2" },
                { " reset-sent=1700000000100000", "" },
                { "before=2", "before=3" },
                { "before=2", "before=1" },
                { "before=2", "before=5" },
                { "before=2", "before=" },
                { "slot=0,0,bca,", "slot=0,0,cba," },
                { "slot=0,0,bca,", "slot=0,0,bbca," },
                { "slot=0,0,bca,", "slot=0,0,bcx," },
                { "slot=0,0,bca,", "slot=0,0,," },
                { "slot=0,0,bca,", "slot=0,0,b-," },
                { "slot=0,0,bca,", "slot=4294967296,0,bca," },
                { "slot=0,0,bca,", "slot=0,0,bca,," },
                { "slot=0,0,bca,", "slot=0,0,bca" },
                { ",1111", ",111" },
                { ",1111", ",11111111111111111111111111111111111111111111111111111111111111111111" },
                { "slot=", "slab=" },
        };
        for (size_t i = 0; i < ELEMENTSOF(edits); i++) {
                const char *at = strstr(good, edits[i].from);
                ASSERT_TRUE(at);
                snprintf(bad, sizeof(bad), "%.*s%s%s", (int) (at - good), good, edits[i].to,
                         at + strlen(edits[i].from));
                memset(&untouched, 0x5a, sizeof(untouched));
                out = untouched;
                if (smp_update_checkpoint_parse(bad, &out) != -EINVAL) {
                        fprintf(stderr, "accepted: '%s'\n", bad);
                        abort();
                }
                ASSERT_MEMEQ(&out, &untouched, sizeof(out));
        }

        /* around the line */
        snprintf(bad, sizeof(bad), "%s ", good);
        ASSERT_EQ(smp_update_checkpoint_parse(bad, &out), -EINVAL);
        snprintf(bad, sizeof(bad), "%s\n", good);
        ASSERT_EQ(smp_update_checkpoint_parse(bad, &out), -EINVAL);
        snprintf(bad, sizeof(bad), " %s", good);
        ASSERT_EQ(smp_update_checkpoint_parse(bad, &out), -EINVAL);
        snprintf(bad, sizeof(bad), "%s x=1", good);
        ASSERT_EQ(smp_update_checkpoint_parse(bad, &out), -EINVAL);
        ASSERT_EQ(smp_update_checkpoint_parse("", &out), -EINVAL);
        ASSERT_EQ(smp_update_checkpoint_parse(NULL, &out), -EINVAL);
        /* longer than any checkpoint */
        memset(bad, 'x', sizeof(bad) - 1);
        bad[sizeof(bad) - 1] = 0;
        ASSERT_EQ(smp_update_checkpoint_parse(bad, &out), -EINVAL);

        ASSERT_OK(smp_update_checkpoint_parse(good, &out));
        assert_same(&cp, &out);
}

static void test_phase_names(void) {
        static const char *const names[] = { "stage", "activate", "verify", "done" };
        for (int i = 0; i < _SMP_UPDATE_PHASE_MAX; i++) {
                ASSERT_STREQ(smp_update_phase_to_string((enum smp_update_phase) i), names[i]);
                ASSERT_EQ(smp_update_phase_from_string(names[i]), i);
        }
        ASSERT_TRUE(smp_update_phase_to_string(_SMP_UPDATE_PHASE_MAX) == NULL);
        ASSERT_EQ(smp_update_phase_from_string("Stage"), -EINVAL);
        ASSERT_EQ(smp_update_phase_from_string(NULL), -EINVAL);
}

TEST_MAIN(TEST(test_spelling),
          TEST(test_largest),
          TEST(test_format_refuses),
          TEST(test_parse_refuses),
          TEST(test_phase_names))
