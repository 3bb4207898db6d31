/* SPDX-License-Identifier: MIT */
/*
 * wardend configuration: daemon settings plus cell specs, parsed from JSON
 * and validated as a whole (static partitioning is checked across cells).
 * Error messages name the JSON path ("$.cells[1].cpus[0]") and the problem.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hypervisor/backend.h"
#include "names.h"
#include "network-spec.h"

#define CONFIG_MAX_CELLS 64
#define CONFIG_MAX_LISTEN 8
#define CONFIG_ERROR_MAX 512
#define CONFIG_MAX_IMAGE_DIRS 16

typedef enum FailureKind {
	FAILURE_PANIC,
	FAILURE_STUCK,
	FAILURE_BOOT_TIMEOUT,
	FAILURE_CRASH,
	FAILURE_EXIT,
	_FAILURE_KIND_MAX,
	_FAILURE_KIND_INVALID = -1,
} FailureKind;

typedef enum RecoveryAction {
	ACTION_RESTART,
	ACTION_STOP,
	ACTION_PRESERVE,
	ACTION_NONE,
	_ACTION_MAX,
	_ACTION_INVALID = -1,
} RecoveryAction;

typedef enum ExhaustedAction {
	EXHAUSTED_STOP,
	EXHAUSTED_HYPERVISOR_RESTART,
	_EXHAUSTED_MAX,
	_EXHAUSTED_INVALID = -1,
} ExhaustedAction;

const char *failure_kind_to_string(FailureKind k);
FailureKind failure_kind_from_string(const char *s);
const char *recovery_action_to_string(RecoveryAction a);
RecoveryAction recovery_action_from_string(const char *s);
const char *exhausted_action_to_string(ExhaustedAction a);
ExhaustedAction exhausted_action_from_string(const char *s);

typedef struct HealthSpec {
	uint32_t period_ms;
	uint32_t timeout_ms;
	uint32_t boot_timeout_ms;
} HealthSpec;

typedef struct RecoverySpec {
	RecoveryAction on[_FAILURE_KIND_MAX];
	uint32_t max_restarts;
	uint32_t window_s;
	uint32_t backoff_initial_ms;
	uint32_t backoff_max_ms;
	double backoff_factor;
	uint32_t reset_after_s;
	ExhaustedAction on_exhausted;
	uint32_t shutdown_timeout_ms;
} RecoverySpec;

typedef struct MemRegion {
	char name[32];
	uint64_t phys_start;
	uint64_t virt_start;
	uint64_t size;
	unsigned flags; /* BACKEND_MEM_* */
} MemRegion;

typedef struct ImageSpec {
	char *file;
	uint64_t address;
} ImageSpec;

/* "container": a container cell's rootfs and limits (config-container.c) */
typedef struct ContainerSpec {
	char *rootfs; /* uploaded image's name, or absolute */
	char *digest; /* "sha256:HEX" or NULL */
	bool writable;
	uint64_t memory_limit;
} ContainerSpec;

typedef struct CellSpec {
	char name[CELL_NAME_MAX + 1];
	char backend[16];
	unsigned cpus[BACKEND_MAX_CPUS];
	size_t n_cpus;
	MemRegion memory[BACKEND_MAX_REGIONS];
	size_t n_memory;
	MemRegion comm; /* size 0: none */
	ImageSpec images[BACKEND_MAX_IMAGES];
	size_t n_images;
	uint64_t entry;
	char *args;
	/* "linux": a kernel booted with its initramfs instead of images */
	char *kernel;
	char *initrd;
	char *cmdline;
	char *dtb; /* jailhouse: the device tree the kernel gets (patched for the cell) */
	/* "jailhouse": the operator's .cell (absolute); the spec's CPUs and
	 * memory regions are what it says (cell_spec_jailhouse_reconcile) */
	char *cell_config;
	/* ... or "jailhouse": {"cell": DOC}: the .cell generated from warden's
	 * JSON document of it (wardenctl jailhouse import/export's form) when
	 * the spec is accepted; exactly one of cell_config and cell_doc */
	json_t *cell_doc;
	uint8_t *cell_bytes;
	size_t cell_size;
	bool autostart;
	bool allow_inject;
	/* "realtime": {"priority": 1..99, "mlock": bool}: the vCPU threads
	 * run SCHED_FIFO at rt_priority (0: not real-time) with the cell's
	 * memory locked (kvm backend; cyclictest's -p and -m) */
	unsigned rt_priority;
	bool rt_mlock;
	HealthSpec health;
	RecoverySpec recovery;
	NetSpec *network; /* the spec's "network", or NULL (network-spec.h) */
	ContainerSpec *container; /* "backend": "container" only */
} CellSpec;

typedef struct ApiConfig {
	char *tokens_file;        /* NAME ROLE SHA256HEX per line */
	bool anonymous_metrics;   /* /health and /metrics without a token */
	unsigned socket_mode;     /* unix listeners, default 0660 */
	char *socket_group;       /* unix listeners' group, NULL: unchanged */
	char *tls_cert;           /* PEM files; both: TLS on TCP listeners */
	char *tls_key;
	uint32_t idempotency_ttl_s;
	uint64_t max_image_bytes;
	/* Where absolute image paths may point, in every spec (imagepath.h);
	 * default WARDEN_IMAGE_DIRS (daemon/meson.build). */
	char *image_dirs[CONFIG_MAX_IMAGE_DIRS];
	size_t n_image_dirs;
} ApiConfig;

typedef struct Config {
	char *listen[CONFIG_MAX_LISTEN];
	size_t n_listen;
	char *state_dir;
	char *runtime_dir;
	char *kvm_runner;
	char *qemu_binary;
	char *qemu_accel;
	char *qemu_machine;
	int qemu_restart_in_place; /* -1: the backend's choice (fresh), 0, 1 */
	char *container_runtime;   /* backends.container.runtime: "runc" (NULL) or "crun" */
	char *container_binary;    /* backends.container.binary: the runtime's path */
	bool jailhouse;            /* backends.jailhouse is there */
	char *jh_system_config;    /* what ENABLE loads; required to enable */
	char *jh_helper;           /* warden-jailhouse */
	char *jh_sysfs;            /* NULL: /sys/devices/jailhouse */
	char *jh_device;           /* NULL: /dev/jailhouse */
	char *jh_mem;              /* NULL: /dev/mem */
	char *jh_linux_loader;     /* NULL: Jailhouse's installed linux-loader.bin */
	unsigned jh_revision;      /* of jh_system_config; 0: unknown */
	int jh_arch;               /* of jh_system_config (JhArch); -1: unknown */
	bool cpu_sharing;
	unsigned root_cpus[BACKEND_MAX_CPUS];
	size_t n_root_cpus;
	size_t max_body_bytes;
	size_t max_header_bytes;
	unsigned max_connections;
	ApiConfig api;
	CellSpec *cells[CONFIG_MAX_CELLS];
	size_t n_cells;
} Config;

/* What validation needs to know of the machine; tests inject their own. */
typedef struct ConfigEnv {
	unsigned n_cpus;
	/* The revision and architecture (JhArch) of the Jailhouse system
	 * config, which a cell's .cell must share; 0 and -1: unknown. */
	unsigned jh_revision;
	int jh_arch;
} ConfigEnv;

void config_env_host(ConfigEnv *ret);
/* The host's, with what the configuration tells of the hypervisor. */
void config_env_for(const Config *c, ConfigEnv *ret);
/* The revision and JhArch of a Jailhouse system config; 0 and -1 when it
 * cannot be read (ENABLE then fails with the reason). */
void config_jailhouse_system_identity(const char *system_config, unsigned *ret_revision, int *ret_arch);

/* On error, returns -EINVAL (or -ENOMEM) and writes a message with the
 * JSON path into err (CONFIG_ERROR_MAX bytes). */
int config_parse(json_t *root, const ConfigEnv *env, Config **ret, char *err);
int config_load_file(const char *path, const ConfigEnv *env, Config **ret, char *err);
Config *config_free(Config *c);

/* "PATH: message" into err (CONFIG_ERROR_MAX bytes); returns -EINVAL. For
 * the config modules (config.c, config-jailhouse.c). */
int config_error(char *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parse and validate one cell spec on its own (path is the JSON path of the
 * object, for messages). */
int cell_spec_parse(json_t *obj, const char *path, const ConfigEnv *env, CellSpec **ret, char *err);
CellSpec *cell_spec_free(CellSpec *s);
/* A jailhouse spec's .cell (config-jailhouse.c), at acceptance: reads and
 * decodes s->cell_config and fills the CPUs and memory regions the spec
 * left out (has_cpus, has_memory false), or checks that those it states
 * are the .cell's; the comm region must be one of the .cell's regions
 * shared with the root cell (its phys_start filled in). -EINVAL with the
 * JSON path in err. */
/* A jailhouse spec names its .cell one way or the other. */
static inline bool cell_spec_has_cell(const CellSpec *s) {
	return s->cell_config || s->cell_doc;
}
/* "jailhouse": {"cell": DOC}: encodes DOC (at its own "revision", 14 when
 * it names none) into s->cell_bytes and keeps a copy of it. */
int cell_spec_jailhouse_generate(CellSpec *s, json_t *doc, const char *path, char *err);
int cell_spec_jailhouse_reconcile(CellSpec *s, const char *path, const ConfigEnv *env, bool has_cpus,
                                  bool has_memory, char *err);
json_t *cell_spec_to_json(const CellSpec *s);
/* config-container.c: parses "container" (and refuses it elsewhere). */
int cell_spec_container_parse(CellSpec *s, json_t *obj, const char *path, char *err);
ContainerSpec *container_spec_free(ContainerSpec *c);
/* backends.container: {"runtime": "runc"|"crun", "binary": "/ABS/PATH"} */
int config_parse_container_backend(json_t *backends, Config *c, char *err);
json_t *container_spec_to_json(const ContainerSpec *c);
/* Checks that `s` can live beside `others` (CPUs, memory); `sharing` allows
 * CPU sharing. Returns -EEXIST (duplicate name), -EBUSY (conflict). */
int cell_spec_check_partition(const CellSpec *s, const char *path, CellSpec *const *others, size_t n_others,
                              const unsigned *root_cpus, size_t n_root_cpus, bool sharing, char *err);
bool cell_name_is_valid(const char *name);
/* The names an uploaded image may have (defined in store.c, whose files
 * they are); a spec's image reference is one of them or absolute. */
bool image_name_is_valid(const char *name);

/* Every file the spec names (images, then kernel and initrd); returns the
 * count, at most SPEC_MAX_IMAGE_REFS. */
#define SPEC_MAX_IMAGE_REFS (BACKEND_MAX_IMAGES + 3)
size_t cell_spec_image_refs(const CellSpec *s, const char *refs[SPEC_MAX_IMAGE_REFS]);

/* Fills a backend config that points into `s` (valid while s lives). */
void cell_spec_to_backend(const CellSpec *s, BackendCellConfig *ret, BackendRegion *regions, BackendImage *images);

static inline void config_freep(Config **c) {
	config_free(*c);
}
static inline void cell_spec_freep(CellSpec **s) {
	cell_spec_free(*s);
}
