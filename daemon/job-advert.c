/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rebooting BLE devices seen advertising again (job-radio.h).  A BLE
 * device that swaps and reboots after its reset does not advertise, and
 * a Device1.Connect() to it waits for the controller's connect timeout
 * while holding its adapter's one LE connect in progress: every other
 * link of the adapter queues behind it (bluez-adapter.c).  Polling such
 * a device for its verify costs the whole adapter that long per poll.
 * So while a verify would poll a rebooting BLE device (no swap time is
 * learned for its board yet, or it was not back at the learned time),
 * the ble transport's discovery watches for advertisements
 * (report=each, doc/transport-ble.md), and a device seen advertising is
 * verified at once; the slow poll ([jobs] swap_estimate apart) and the
 * reboot timeout stay as the fallback for a device that is never seen.
 *
 * The watch runs only then, not through a whole rollout: an active scan
 * shares the controller's radio with the connections' events, and the
 * kernel pauses it for every LE connection it creates (bluetoothd starts
 * a filtered discovery again at once when that ends it, src/adapter.c
 * discovering_callback()).  It is apart from [discovery], which finds
 * new devices, and runs when that is off.  A watch that fails (no
 * adapter, no bluetoothd) is tried again JOB_ADVERT_RETRY_USEC later;
 * meanwhile verifies poll as they did without it.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-discovery.h"
#include "util.h"

#define JOB_ADVERT_RETRY_USEC (60 * 1000000ull)
/* BLE addresses: "AA:BB:CC:DD:EE:FF" */
#define BLE_ADDRESS_LEN 17u

bool job_link_advertises(const struct job *j) {
        return j->device && streq(j->device->transport, "ble") && !j->manager->config->job_hold_slot_during_reboot;
}

/* A verify that would poll: the device rebooting, and no learned time
 * to wait for, or past it already.  A verify under way counts too: the
 * watch goes on should it miss (a watch stopped and started again at
 * each verify would read BlueZ's objects each time, and miss what
 * advertises meanwhile). */
static bool job_advert_needed(const struct job *j) {
        return j->phase == SMP_UPDATE_PHASE_VERIFY &&
               (j->state == JOB_REBOOTING || j->state == JOB_QUEUED || j->state == JOB_RUNNING) &&
               job_link_advertises(j) && (j->first_verify_usec == 0 || j->verify_misses > 0);
}

/* Whether the device's address (its connection string's, options after
 * a comma) is address. */
static bool device_has_address(const struct device *d, const char *address) {
        const char *a = d->address;
        return a && address && strlen(address) == BLE_ADDRESS_LEN && strncasecmp(a, address, BLE_ADDRESS_LEN) == 0 &&
               (a[BLE_ADDRESS_LEN] == 0 || a[BLE_ADDRESS_LEN] == ',');
}

static void on_advertised(const struct smp_discovered *found, void *userdata) {
        struct manager *m = userdata;

        if (!found) {
                /* It ended by itself: no adapter, or bluetoothd left. */
                log_notice("BLE advertisement watch ended; rebooting BLE devices are polled");
                m->radio.advert_watch = smp_discovery_free(m->radio.advert_watch);
                m->radio.advert_failed_usec = now_monotonic_usec();
                /* Those waiting for an advertisement poll again. */
                for (size_t i = 0; i < m->n_jobs; i++)
                        if (job_advert_needed(m->jobs[i]))
                                job_advert_watch_ended(m->jobs[i]);
                return;
        }
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                if (j->phase == SMP_UPDATE_PHASE_VERIFY &&
                    (j->state == JOB_REBOOTING || j->state == JOB_QUEUED || j->state == JOB_RUNNING) &&
                    job_link_advertises(j) && device_has_address(j->device, found->address))
                        job_device_advertised(j);
        }
}

static int job_advert_start(struct manager *m) {
        uint64_t now = now_monotonic_usec();
        int r;

        if (m->radio.advert_watch)
                return 0;
        if (m->stopping)
                return -ECANCELED;
        if (m->radio.advert_failed_usec && now < m->radio.advert_failed_usec + JOB_ADVERT_RETRY_USEC)
                return -EAGAIN;
        r = smp_discovery_start(m->smp, m->event, "ble", "report=each", on_advertised, m, &m->radio.advert_watch);
        if (r < 0) {
                m->radio.advert_failed_usec = now;
                log_notice("Cannot watch for BLE advertisements (%s); rebooting BLE devices are polled", strerror(-r));
                return r;
        }
        log_debug("Watching for rebooting BLE devices to advertise");
        return 0;
}

bool job_advert_watching(struct manager *m) {
        return job_advert_start(m) >= 0;
}

void job_advert_stop(struct manager *m) {
        if (m->radio.advert_watch)
                log_debug("No BLE device to watch for: advertisement watch stopped");
        m->radio.advert_watch = smp_discovery_free(m->radio.advert_watch);
}

void job_advert_update(struct manager *m) {
        bool needed = false;

        /* Called at every scheduling pass: with no job rebooting or
         * queued (a verify waiting for a slot), no walk of the jobs. */
        if (m->jobs_by_state[JOB_REBOOTING] == 0 && m->jobs_by_state[JOB_QUEUED] == 0) {
                job_advert_stop(m);
                return;
        }
        for (size_t i = 0; i < m->n_jobs && !needed && !m->stopping; i++)
                needed = job_advert_needed(m->jobs[i]);
        if (!needed)
                job_advert_stop(m);
        else
                (void) job_advert_start(m);
}
