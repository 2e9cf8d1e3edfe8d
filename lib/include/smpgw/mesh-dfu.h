/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bluetooth Mesh DFU through a Distributor driven by shell commands over
 * SMP (smp-shell.h): what the Initiator sends (firmware ID, metadata,
 * command lines that fit the shell buffer) and what it reads back (the
 * Distributor's printed status lines, receiver pages, capabilities and
 * slot messages), as typed structs.
 *
 * The printed formats are those of Zephyr's subsys/bluetooth/mesh/shell/
 * dfd.c and dfu.c.  They changed between releases, and the parsers take
 * every known variant:
 *   - Zephyr v3.3/v3.4: "group" and "blob_addr" printed as 0x%04x; slot add
 *     prints "Slot added. ID: N", or "Failed." when no slot is free;
 *   - Zephyr v3.5 and later (the slot rework of PR #61389 and the decimal
 *     numbers of PR #62707; nRF Connect SDK carries both since its Zephyr
 *     3.4.99 fork): decimals; slot add prints "Slot added. Index: N",
 *     "Failed to reserve slot." when no slot is free (ret 0!) and
 *     "Failed to commit slot: -22" (ret -22) for a slot it cannot
 *     register (no firmware ID, size 0, a firmware ID already present).
 * The output arrives through Zephyr's dummy shell backend: "\r\n" line
 * ends, possibly cut at the backend's buffer size (a receivers page that
 * does not fit is truncated mid-entry), possibly with log lines mixed in.
 *
 * The JSON-like parsers are tolerant by design and never trust the text:
 * they scan for "key": value pairs inside {...} objects, take numbers in
 * decimal or 0x hex, skip whatever else is there (text, commas, log lines,
 * escape sequences, NUL bytes), ignore unknown keys, treat a value that
 * does not fit its field as absent, and discard a value the text ends in
 * the middle of (a number cut by truncation would read as a smaller one).
 * They return 0 when they found what the command prints, -EBADMSG when
 * not (the struct is then zeroed), -EINVAL for bad arguments.  Nesting
 * deeper than the printed formats is skipped; when the text holds several
 * status lines or pages (log lines can carry braces too), the last whole
 * one counts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/mcuboot-image.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* State machines and codes (Zephyr include/zephyr/bluetooth/mesh/     */
/* dfd.h, dfu.h, blob.h; Mesh DFU and BLOB Transfer specifications)     */

/* Distributor phase (enum bt_mesh_dfd_phase). */
enum smp_mesh_dfd_phase {
        SMP_MESH_DFD_PHASE_IDLE = 0,
        SMP_MESH_DFD_PHASE_TRANSFER_ACTIVE = 1,
        SMP_MESH_DFD_PHASE_TRANSFER_SUCCESS = 2,
        SMP_MESH_DFD_PHASE_APPLYING_UPDATE = 3,
        SMP_MESH_DFD_PHASE_COMPLETED = 4,
        SMP_MESH_DFD_PHASE_FAILED = 5,
        SMP_MESH_DFD_PHASE_CANCELING_UPDATE = 6,
        SMP_MESH_DFD_PHASE_TRANSFER_SUSPENDED = 7,
        _SMP_MESH_DFD_PHASE_MAX,
};

/* Distributor status codes (enum bt_mesh_dfd_status). */
enum smp_mesh_dfd_status {
        SMP_MESH_DFD_SUCCESS = 0,
        SMP_MESH_DFD_ERR_INSUFFICIENT_RESOURCES = 1,
        SMP_MESH_DFD_ERR_WRONG_PHASE = 2,
        SMP_MESH_DFD_ERR_INTERNAL = 3,
        SMP_MESH_DFD_ERR_FW_NOT_FOUND = 4,
        SMP_MESH_DFD_ERR_INVALID_APPKEY_INDEX = 5,
        SMP_MESH_DFD_ERR_RECEIVERS_LIST_EMPTY = 6,
        SMP_MESH_DFD_ERR_BUSY_WITH_DISTRIBUTION = 7,
        SMP_MESH_DFD_ERR_BUSY_WITH_UPLOAD = 8,
        SMP_MESH_DFD_ERR_URI_NOT_SUPPORTED = 9,
        SMP_MESH_DFD_ERR_URI_MALFORMED = 10,
        SMP_MESH_DFD_ERR_URI_UNREACHABLE = 11,
        SMP_MESH_DFD_ERR_NEW_FW_NOT_AVAILABLE = 12,
        SMP_MESH_DFD_ERR_SUSPEND_FAILED = 13,
        _SMP_MESH_DFD_STATUS_MAX,
};

/* Target (Firmware Update Server) phase, as the Distributor last heard it
 * (enum bt_mesh_dfu_phase).  The Distributor sets UNKNOWN when it starts
 * a distribution, until the target answers. */
enum smp_mesh_dfu_phase {
        SMP_MESH_DFU_PHASE_IDLE = 0,
        SMP_MESH_DFU_PHASE_TRANSFER_ERROR = 1,
        SMP_MESH_DFU_PHASE_TRANSFER_ACTIVE = 2,
        SMP_MESH_DFU_PHASE_VERIFY = 3,
        SMP_MESH_DFU_PHASE_VERIFY_OK = 4,
        SMP_MESH_DFU_PHASE_VERIFY_FAIL = 5,
        SMP_MESH_DFU_PHASE_APPLYING = 6,
        SMP_MESH_DFU_PHASE_TRANSFER_CANCELED = 7,
        SMP_MESH_DFU_PHASE_APPLY_SUCCESS = 8,
        SMP_MESH_DFU_PHASE_APPLY_FAIL = 9,
        SMP_MESH_DFU_PHASE_UNKNOWN = 10,
        _SMP_MESH_DFU_PHASE_MAX,
};

/* Per-target status (enum bt_mesh_dfu_status). */
enum smp_mesh_dfu_status {
        SMP_MESH_DFU_SUCCESS = 0,
        SMP_MESH_DFU_ERR_RESOURCES = 1,
        SMP_MESH_DFU_ERR_WRONG_PHASE = 2,
        SMP_MESH_DFU_ERR_INTERNAL = 3,
        SMP_MESH_DFU_ERR_FW_IDX = 4,
        SMP_MESH_DFU_ERR_METADATA = 5,
        SMP_MESH_DFU_ERR_TEMPORARILY_UNAVAILABLE = 6,
        SMP_MESH_DFU_ERR_BLOB_XFER_BUSY = 7,
        _SMP_MESH_DFU_STATUS_MAX,
};

/* Names for logs ("transfer-active", "busy-with-distribution", ...);
 * NULL for codes outside the enums. */
const char *smp_mesh_dfd_phase_to_string(unsigned phase);
const char *smp_mesh_dfd_status_to_string(unsigned status);
const char *smp_mesh_dfu_phase_to_string(unsigned phase);
const char *smp_mesh_dfu_status_to_string(unsigned status);

/* Transfer modes (BT_MESH_BLOB_XFER_MODE_*) and the shell's defaults for
 * `dfd start`. */
#define SMP_MESH_XFER_MODE_PUSH 1u
#define SMP_MESH_XFER_MODE_PULL 2u
#define SMP_MESH_TTL_DEFAULT 0xffu          /* BT_MESH_TTL_DEFAULT */

/* Unicast addresses are 0x0001..0x7fff; the Distributor silently skips
 * any other address in receivers-add. */
static inline bool smp_mesh_addr_is_unicast(uint32_t addr) {
        return addr >= 0x0001 && addr <= 0x7fff;
}

/* ------------------------------------------------------------------ */
/* Firmware ID and metadata                                            */

/* CONFIG_BT_MESH_DFU_FWID_MAXLEN and CONFIG_BT_MESH_DFU_METADATA_MAXLEN
 * defaults.  The shell decodes longer hex into nothing (hex2bin into a
 * buffer too small returns 0): a firmware ID that long makes the slot
 * unregistrable, metadata that long is silently dropped. */
#define SMP_MESH_FWID_MAXLEN 16u
#define SMP_MESH_METADATA_MAXLEN 32u

/* The firmware ID nRF Connect SDK's MCUboot samples use: the image
 * version in the layout of MCUboot's struct image_version, 8 bytes:
 * major u8, minor u8, revision u16 LE, build u32 LE.  2.0.0+0 is
 * 0200000000000000. */
#define SMP_MESH_FWID_MCUBOOT_LEN 8u

void smp_mesh_fwid_from_version(const struct mcuboot_version *v, uint8_t out[SMP_MESH_FWID_MCUBOOT_LEN]);
/* The reverse; -EINVAL unless len is 8. */
int smp_mesh_fwid_to_version(const uint8_t *fwid, size_t len, struct mcuboot_version *ret);

/* Core types (enum bt_mesh_dfu_metadata_fw_core_type). */
enum smp_mesh_core_type {
        SMP_MESH_CORE_APP = 1u << 0,
        SMP_MESH_CORE_NETWORK = 1u << 1,
        SMP_MESH_CORE_APP_SPECIFIC_BLOB = 1u << 2,
};

/* Firmware metadata (struct bt_mesh_dfu_metadata): version (8 bytes as
 * the firmware ID above), size u24 LE, core type u8, then, when the core
 * type has SMP_MESH_CORE_APP, composition data hash u32 LE and element
 * count u16 LE (Zephyr's decoder requires them then), then user data. */
#define SMP_MESH_METADATA_SIZE_MAX 0xffffffu  /* u24 */

struct smp_mesh_metadata {
        struct mcuboot_version version;
        uint32_t size;                 /* image size in bytes, <= 0xffffff */
        uint8_t core_type;             /* enum smp_mesh_core_type bits */
        bool has_composition;
        uint32_t comp_hash;            /* bt_mesh_dfu_metadata_comp_hash_get() of the new
                                        * composition data */
        uint16_t elements;
        const uint8_t *user_data;      /* decode: borrows the input */
        size_t user_data_len;
};

/* Encodes into out[0..cap); returns the length.  -EINVAL when the core
 * type has SMP_MESH_CORE_APP but no composition is given (or one is
 * given without it), -EFBIG for a size above 0xffffff, -ENOBUFS when cap
 * is too small. */
int smp_mesh_metadata_encode(const struct smp_mesh_metadata *md, uint8_t *out, size_t cap);
/* Decodes as Zephyr's bt_mesh_dfu_metadata_decode() does; -EBADMSG when
 * shorter than 12 bytes (18 with SMP_MESH_CORE_APP). */
int smp_mesh_metadata_decode(const uint8_t *in, size_t len, struct smp_mesh_metadata *ret);

/* The metadata of an MCUboot image: its version, its size (the whole
 * file, which is what the Distributor holds in its slot and sends), the
 * given core type and composition (NULL: none).  -EFBIG above 16 MiB - 1. */
struct smp_mesh_composition {
        uint32_t hash;
        uint16_t elements;
};
int smp_mesh_metadata_from_image(const struct mcuboot_image *img, uint8_t core_type,
                                 const struct smp_mesh_composition *comp, struct smp_mesh_metadata *ret);

/* Lower-case hex without spaces, as the shell takes it.  Returns the
 * string length; -ENOBUFS when 2 * len + 1 does not fit. */
int smp_mesh_hex(const uint8_t *data, size_t len, char *buf, size_t size);
/* Hex (either case, even length, no spaces) into bytes; returns the
 * count.  -EINVAL for other characters or an odd length, -ENOBUFS. */
int smp_mesh_unhex(const char *hex, size_t len, uint8_t *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Command lines                                                       */

/* Every builder writes one command line ("mesh models ...") into buf and
 * returns its length, or -ENOBUFS when buf is too small; the caller
 * checks it against the device's shell buffer (smp_shell_line_fits()) or
 * lets smp_shell_exec_line() do it. */

/* "mesh models dfu slot add <size> <fwid hex> [<metadata hex>]".  The
 * firmware ID is required (the current shell refuses to register a slot
 * without one): -EINVAL for fwid_len 0 or above SMP_MESH_FWID_MAXLEN, or
 * metadata above SMP_MESH_METADATA_MAXLEN. */
int smp_mesh_slot_add_cmd(uint32_t size, const uint8_t *fwid, size_t fwid_len, const uint8_t *metadata,
                          size_t metadata_len, char *buf, size_t bufsize);

struct smp_mesh_dfd_start_params {
        uint16_t app_idx;
        uint16_t slot_idx;             /* position in the slot list (0: the only slot) */
        uint16_t group;                /* 0: unicast to each target */
        bool apply;                    /* false: verify only, `dfd apply` later */
        uint8_t ttl;                   /* SMP_MESH_TTL_DEFAULT */
        uint16_t timeout_base;
        uint8_t xfer_mode;             /* SMP_MESH_XFER_MODE_PUSH or _PULL */
};

/* "mesh models dfd start <app_idx> <slot_idx> <group> <true|false> <ttl>
 * <timeout_base> <xfer_mode>", every argument written out so that none is
 * left to the shell's defaults, which are easy to get wrong: an omitted
 * policy means apply, a given one means apply only for the exact word
 * "true" (so "1" means verify only).  -EINVAL for a group that is
 * neither 0 nor a group address (0xc000..0xffff) or a transfer mode
 * other than push/pull. */
int smp_mesh_dfd_start_cmd(const struct smp_mesh_dfd_start_params *p, char *buf, size_t bufsize);

struct smp_mesh_receiver {
        uint16_t addr;                 /* unicast element address of the target's
                                        * Firmware Update Server */
        uint8_t img_idx;               /* image index on the target (0: the application) */
};

/* Splits receivers into as few "mesh models dfd receivers-add
 * <addr>,<img>[;<addr>,<img>]..." lines as fit a shell buffer of
 * cmd_buf_size (0: SMP_SHELL_CMD_BUFF_SIZE_DEFAULT), addresses as 0x%04x.
 * Returns a NULL-terminated array of lines (free with smp_strv_free())
 * and its count.  -EINVAL for n 0 or an address that is not unicast (the
 * Distributor would skip it without a word), -E2BIG when not even one
 * receiver fits a line.  The Distributor takes at most targets_max
 * receivers (capabilities-get); splitting a larger group into several
 * distributions is the caller's business. */
int smp_mesh_receivers_add_cmds(const struct smp_mesh_receiver *r, size_t n, size_t cmd_buf_size,
                                char ***ret_lines, size_t *ret_n);

/* "mesh models dfd receivers-get <first> <count>". */
int smp_mesh_receivers_get_cmd(uint16_t first, uint16_t count, char *buf, size_t bufsize);

/* ------------------------------------------------------------------ */
/* Parsers of printed output                                           */

/* `dfd get`, `start`, `suspend`, `cancel`, `apply`:
 *   { "status": 0, "phase": 1, "group": 0, "app_idx": 0, "ttl": 255,
 *     "timeout_base": 0, "xfer_mode": 1, "apply": 1, "slot_idx": 0 }
 * The part from "group" on is printed only when the phase is not idle
 * and a distribution has a slot (after a reboot it has none). */
struct smp_mesh_dfd_state {
        uint8_t status;                /* enum smp_mesh_dfd_status */
        uint8_t phase;                 /* enum smp_mesh_dfd_phase */
        bool has_params;               /* all seven below were printed */
        uint16_t group;
        uint16_t app_idx;
        uint8_t ttl;
        uint16_t timeout_base;
        uint8_t xfer_mode;
        bool apply;
        uint16_t slot_idx;
};
int smp_mesh_dfd_state_parse(const char *text, size_t len, struct smp_mesh_dfd_state *ret);

/* `dfd receivers-add` and `receivers-delete-all`:
 *   {"status": 0, "target_cnt": 2}
 * receivers-add stops at the first receiver it cannot add (status 1,
 * ret -ENOSPC when the list is full; status 7, ret -EBUSY during a
 * distribution); the ones before it stay added, target_cnt says how many
 * there are now.  An unparsable entry prints a warning and nothing else
 * (ret -EINVAL), an entry without ",<img_idx>" prints nothing: -EBADMSG
 * here, look at ret. */
struct smp_mesh_receivers_status {
        uint8_t status;                /* enum smp_mesh_dfd_status */
        uint16_t target_cnt;
};
int smp_mesh_receivers_status_parse(const char *text, size_t len, struct smp_mesh_receivers_status *ret);

/* `dfd receivers-get <first> <count>`:
 *   {
 *           "target_cnt": 2,
 *           "targets": {
 *                   "0": { "blob_addr": 256, "phase": 2, "status": 0, "blob_status": 0,
 *                          "progress": 25, "img_idx": 0 },
 *                   "1": { ... }
 *           }
 *   }
 * A page cut off by the shell's output buffer keeps the entries that were
 * printed whole (complete is false); ask again from the first one
 * missing.  With no receivers, or first >= target_cnt, the Distributor
 * prints nothing and returns -EINVAL (-EBADMSG here). */
#define SMP_MESH_RECEIVERS_PAGE_MAX 64u

struct smp_mesh_target {
        uint16_t index;                /* position in the Distributor's list */
        uint16_t blob_addr;            /* the target's unicast address */
        uint8_t phase;                 /* enum smp_mesh_dfu_phase */
        uint8_t status;                /* enum smp_mesh_dfu_status */
        uint8_t blob_status;           /* BLOB Transfer status (0 success, 9 internal, ...) */
        uint8_t progress;              /* transfer progress in units of 2 % (0..50); the
                                        * Distributor prints one value for everybody */
        uint8_t img_idx;
};

/* Percent from the printed progress (units of 2 %), capped at 100. */
static inline unsigned smp_mesh_progress_percent(uint8_t progress) {
        return progress >= 50 ? 100u : 2u * progress;
}

struct smp_mesh_receivers_page {
        bool has_target_cnt;
        uint16_t target_cnt;           /* receivers in the Distributor's list */
        struct smp_mesh_target targets[SMP_MESH_RECEIVERS_PAGE_MAX];
        size_t n_targets;              /* whole entries, in printed order */
        bool complete;                 /* the page's closing braces were seen */
        size_t skipped;                /* entries cut off, incomplete, out of range, or
                                        * beyond SMP_MESH_RECEIVERS_PAGE_MAX */
};
int smp_mesh_receivers_page_parse(const char *text, size_t len, struct smp_mesh_receivers_page *ret);

/* `dfd capabilities-get`:
 *   { "targets_max": 8, "slot_cnt": 1, "slot_max_size": 241664,
 *     "slot_space": 241664, "remaining_space": 241664, "oob_supported": false }
 * targets_max, slot_cnt and slot_max_size are required. */
struct smp_mesh_dfd_capabilities {
        uint32_t targets_max;
        uint32_t slot_cnt;
        uint32_t slot_max_size;
        bool has_slot_space;
        uint32_t slot_space;
        bool has_remaining_space;
        uint32_t remaining_space;
        bool has_oob_supported;
        bool oob_supported;
};
int smp_mesh_dfd_capabilities_parse(const char *text, size_t len, struct smp_mesh_dfd_capabilities *ret);

/* `dfd fw-delete-all` (and fw-get, fw-delete):
 *   { "status": 0, "slot_cnt": 0, "idx": 65535[, "fwid": "0200000000000000"] } */
struct smp_mesh_fw_status {
        uint8_t status;                /* enum smp_mesh_dfd_status */
        uint16_t slot_cnt;
        uint16_t idx;
        uint8_t fwid[SMP_MESH_FWID_MAXLEN];
        size_t fwid_len;               /* 0 when not printed */
};
int smp_mesh_fw_status_parse(const char *text, size_t len, struct smp_mesh_fw_status *ret);

/* `dfu slot add`: what the text says, whatever ret says (the shell
 * returns 0 on "Failed to reserve slot." and "Failed."). */
enum smp_mesh_slot_add_outcome {
        SMP_MESH_SLOT_ADDED,           /* "Slot added. Index: N" / "Slot added. ID: N" */
        SMP_MESH_SLOT_NO_FREE_SLOT,    /* "Failed to reserve slot." (v3.5+) */
        SMP_MESH_SLOT_COMMIT_FAILED,   /* "Failed to commit slot: <err>" (v3.5+) */
        SMP_MESH_SLOT_FAILED,          /* "Failed." (v3.4: no free slot, or a duplicate) */
};

struct smp_mesh_slot_add_result {
        enum smp_mesh_slot_add_outcome outcome;
        uint32_t idx;                  /* SMP_MESH_SLOT_ADDED: the slot's position, the
                                        * <slot_idx> of `dfd start` */
        int err;                       /* SMP_MESH_SLOT_COMMIT_FAILED: the errno printed */
        bool has_size;                 /* "Adding slot (size: N)" was printed */
        uint32_t size;
};
/* -EBADMSG when none of the messages is there (a shell error such as
 * "wrong parameter count", or nothing). */
int smp_mesh_slot_add_parse(const char *text, size_t len, struct smp_mesh_slot_add_result *ret);

/* `dfu slot del <idx>` and `dfu slot del-all`. */
enum smp_mesh_slot_del_outcome {
        SMP_MESH_SLOT_DELETED,         /* "Slot N deleted." / "All slots deleted." */
        SMP_MESH_SLOT_NOT_FOUND,       /* "No slot at N" */
        SMP_MESH_SLOT_DELETE_FAILED,   /* "Failed deleting slot N (err: E)" /
                                        * "Failed deleting all slots (err: E)" */
};

struct smp_mesh_slot_del_result {
        enum smp_mesh_slot_del_outcome outcome;
        int err;                       /* SMP_MESH_SLOT_DELETE_FAILED */
};
int smp_mesh_slot_del_parse(const char *text, size_t len, struct smp_mesh_slot_del_result *ret);

#ifdef __cplusplus
}
#endif
