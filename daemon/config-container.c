/* SPDX-License-Identifier: MIT */
/*
 * The "container" object of a container cell's spec:
 *
 *   "backend": "container",
 *   "args": "/bin/warden-demo --period 10",     (the process's argv)
 *   "container": {"rootfs": "rootfs.tar",       (uploaded, or absolute)
 *                 "digest": "sha256:HEX",       (optional)
 *                 "writable": false,            (default: read-only)
 *                 "memory_limit": 67108864}     (bytes, default 64 MiB)
 *
 * A container has no guest-physical memory, images or kernel: "memory",
 * "images", "entry", "linux" and "jailhouse" are refused, and "comm" may
 * be left out (one page). Its CPUs are checked like any cell's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MIN_MEMORY (4ull << 20)

static const char *type_name(const json_t *v) {
	if (json_is_object(v))
		return "an object";
	if (json_is_array(v))
		return "an array";
	if (json_is_string(v))
		return "a string";
	if (json_is_number(v))
		return "a number";
	if (json_is_boolean(v))
		return "a boolean";
	return "null";
}

static int str(json_t *o, const char *key, const char *path, char **ret, char *err) {
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v) || !json_string_value(v)[0])
		return config_error(err, path, "\"%s\" must be a non-empty string", key);
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

static bool hex64(const char *s) {
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!strchr("0123456789abcdefABCDEF", *s))
			return false;
	return true;
}

int cell_spec_container_parse(CellSpec *s, json_t *obj, const char *path, char *err) {
	static const char *const refused[] = { "memory", "images", "entry", "linux", "jailhouse", NULL };
	json_t *o = json_object_get(obj, "container"), *v;
	const char *key;
	char p[300];
	int r;

	if (strcmp(s->backend, "container") != 0) {
		if (o)
			return config_error(err, path, "\"container\" is for \"backend\": \"container\" cells");
		return 0;
	}
	for (size_t i = 0; refused[i]; i++)
		if (json_object_get(obj, refused[i]))
			return config_error(err, path, "\"%s\" is not for container cells (\"container\" names the rootfs)",
			            refused[i]);
	if (!o)
		return config_error(err, path,
		            "a container cell needs \"container\": {\"rootfs\": \"IMAGE.tar\"}, a rootfs tarball");
	if (!json_is_object(o))
		return config_error(err, path, "\"container\" must be an object, not %s", type_name(o));
	snprintf(p, sizeof p, "%s.container", path);
	json_object_foreach(o, key, v)
		if (strcmp(key, "rootfs") != 0 && strcmp(key, "digest") != 0 && strcmp(key, "writable") != 0 &&
		    strcmp(key, "memory_limit") != 0)
			return config_error(err, p, "unknown key \"%s\"", key);
	s->container = calloc(1, sizeof *s->container);
	if (!s->container)
		return -ENOMEM;
	if ((r = str(o, "rootfs", p, &s->container->rootfs, err)) < 0 ||
	    (r = str(o, "digest", p, &s->container->digest, err)) < 0)
		return r;
	if (!s->container->rootfs)
		return config_error(err, p, "\"rootfs\" is required");
	if (s->container->rootfs[0] != '/' && !image_name_is_valid(s->container->rootfs))
		return config_error(err, p,
		            "\"rootfs\": \"%s\" is neither an uploaded image's bare name nor an absolute path",
		            s->container->rootfs);
	if (s->container->digest) {
		const char *h = s->container->digest;
		if (strncmp(h, "sha256:", 7) == 0)
			h += 7;
		if (!hex64(h))
			return config_error(err, p, "\"digest\": \"%s\" is not \"sha256:\" and 64 hex digits",
			            s->container->digest);
	}
	v = json_object_get(o, "writable");
	if (v && !json_is_boolean(v))
		return config_error(err, p, "\"writable\" must be a boolean, not %s", type_name(v));
	s->container->writable = v && json_is_true(v);
	v = json_object_get(o, "memory_limit");
	if (v && (!json_is_integer(v) || (uint64_t)json_integer_value(v) < MIN_MEMORY || json_integer_value(v) < 0))
		return config_error(err, p, "\"memory_limit\" must be an integer of at least %llu bytes",
		            (unsigned long long)MIN_MEMORY);
	s->container->memory_limit = v ? (uint64_t)json_integer_value(v) : 64ull << 20;
	v = json_object_get(obj, "args");
	if (!v || !json_is_string(v) || strspn(json_string_value(v), " \t\n") == strlen(json_string_value(v)))
		return config_error(err, path, "\"args\" is required: the container's command line (\"/bin/app --flag\")");
	/* One page of comm unless the spec says more. */
	if (!json_object_get(obj, "comm"))
		s->comm = (MemRegion){ .name = "comm", .phys_start = UINT64_MAX, .virt_start = 0, .size = 4096 };
	return 0;
}

ContainerSpec *container_spec_free(ContainerSpec *c) {
	if (c) {
		free(c->rootfs);
		free(c->digest);
		free(c);
	}
	return NULL;
}

json_t *container_spec_to_json(const ContainerSpec *c) {
	json_t *o = json_pack("{s:s, s:b, s:I}", "rootfs", c->rootfs, "writable", c->writable, "memory_limit",
	                      (json_int_t)c->memory_limit);
	if (c->digest)
		json_object_set_new(o, "digest", json_string(c->digest));
	return o;
}

int config_parse_container_backend(json_t *backends, Config *c, char *err) {
	static const char *const path = "$.backends.container";
	json_t *o = json_object_get(backends, "container"), *v;
	const char *key;
	int r;

	if (!o)
		return 0;
	if (!json_is_object(o))
		return config_error(err, "$.backends", "\"container\" must be an object, not %s", type_name(o));
	json_object_foreach(o, key, v)
		if (strcmp(key, "runtime") != 0 && strcmp(key, "binary") != 0)
			return config_error(err, path, "unknown key \"%s\"", key);
	if ((r = str(o, "runtime", path, &c->container_runtime, err)) < 0 ||
	    (r = str(o, "binary", path, &c->container_binary, err)) < 0)
		return r;
	if (c->container_runtime && strcmp(c->container_runtime, "runc") != 0 &&
	    strcmp(c->container_runtime, "crun") != 0)
		return config_error(err, path, "\"runtime\": \"%s\" is neither \"runc\" nor \"crun\"", c->container_runtime);
	if (c->container_binary && c->container_binary[0] != '/')
		return config_error(err, path, "\"binary\": \"%s\" is not an absolute path", c->container_binary);
	return 0;
}
