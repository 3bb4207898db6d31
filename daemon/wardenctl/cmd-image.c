/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "client.h"
#include "cmd-image.h"
#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "names.h"
#include "output.h"

#define SHA256_SIZE 32

static int show_images(const Options *o, const Response *resp, json_t *j) {
	json_t *list = json_list(j, "images"), *v;
	Table t = { .n_cols = 3 };
	size_t i;
	int r;

	(void)o, (void)resp;
	table_cell(&t, "NAME");
	table_cell(&t, "SIZE");
	table_cell(&t, "SHA256");
	json_array_foreach(list, i, v) {
		table_cell(&t, "%s", dash(jstr(v, "name")));
		table_cell(&t, "%lld", (long long)json_integer_value(json_object_get(v, "size")));
		table_cell(&t, "%s", dash(jstr(v, "sha256")));
	}
	r = table_print(&t, o);
	table_done(&t);
	return r < 0 ? oom() : EXIT_OK;
}

int cmd_cell_images(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/images");

	(void)verb;
	return path ? get_and_show(o, path, show_images) : oom();
}

static int sha256_file(FILE *f, uint8_t digest[static SHA256_SIZE]) {
	gnutls_hash_hd_t h;
	char buf[65536];
	size_t n;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return -EIO;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (gnutls_hash(h, buf, n) < 0) {
			gnutls_hash_deinit(h, NULL);
			return -EIO;
		}
	gnutls_hash_deinit(h, digest);
	return ferror(f) ? -EIO : 0;
}

/* "sha-256=:BASE64:" (RFC 9530) and the lowercase hex of the digest. */
static int digest_strings(const uint8_t digest[static SHA256_SIZE], char **ret_header, char hex[static 65]) {
	gnutls_datum_t in = { .data = (unsigned char *)digest, .size = SHA256_SIZE }, out = { 0 };
	int k;

	for (size_t i = 0; i < SHA256_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (gnutls_base64_encode2(&in, &out) < 0)
		return -ENOMEM;
	k = asprintf(ret_header, "sha-256=:%.*s:", (int)out.size, (const char *)out.data);
	gnutls_free(out.data);
	return k < 0 ? -ENOMEM : 0;
}

typedef struct Upload {
	const Options *o;
	char label[300];
	curl_off_t size;
	char hex[65];
} Upload;

static bool tick_upload(CURL *e, void *userdata) {
	Upload *u = userdata;
	curl_off_t sent = 0;

	if (!u->o->stderr_tty || u->size <= 0)
		return true;
	curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &sent);
	fprintf(stderr, "\r\033[Kupload %s: %3d%% of %lld bytes", u->label, (int)(sent * 100 / u->size),
	        (long long)u->size);
	return true;
}

static int print_uploaded(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	const char *sha = jstr(j, "sha256");
	const Upload *u = userdata;

	clear_progress_line(o);
	if (sha && strcasecmp(sha, u->hex) != 0) {
		fprintf(stderr, "wardenctl: the daemon stored sha256 %s, but the file's is %s\n", sha, u->hex);
		return EXIT_REFUSED;
	}
	if (o->json)
		print_doc(o, resp->body.data, resp->body.size);
	else
		printf("upload %s: %s, %lld bytes, sha256 %s\n", label, resp->status == 201 ? "new" : "replaced",
		       (long long)(json_is_integer(json_object_get(j, "size")) ? json_integer_value(json_object_get(j, "size"))
		                                                               : u->size),
		       u->hex);
	return EXIT_OK;
}

/* Opens FILE for an upload: 0, or a negative errno (-EINVAL: not a regular file). */
static int open_regular(const char *file, FILE **ret, curl_off_t *ret_size) {
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	struct stat st;

	if (!f || fstat(fileno(f), &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*ret_size = st.st_size;
	*ret = TAKE_PTR(f);
	return 0;
}

int cmd_cell_upload(const Options *o, const char *verb, char **args) {
	const char *name = args[0], *file = args[1], *slash = strrchr(file, '/');
	const char *image = o->as ? o->as : slash ? slash + 1 : file;
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *images = NULL, *path = NULL, *digest = NULL;
	uint8_t sha[SHA256_SIZE];
	Upload u = { .o = o };
	Request q = { .method = "PUT", .content_type = "application/octet-stream", .tick = tick_upload,
		      .tick_userdata = &u };
	int r;

	(void)verb;
	if (!names_image_valid(image)) {
		fprintf(stderr, "wardenctl: \"%s\" is not an image name: " IMAGE_NAME_RULE " (use --as)\n", image);
		return EXIT_USAGE;
	}
	r = open_regular(file, &f, &u.size);
	if (r == 0)
		r = sha256_file(f, sha);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, r == -EINVAL ? "not a regular file" : strerror(-r));
		return EXIT_USAGE;
	}
	images = path_make("/cells/", name, "/images/");
	path = images ? path_make(images, image, NULL) : NULL;
	if (!path || digest_strings(sha, &digest, u.hex) < 0)
		return oom();
	snprintf(u.label, sizeof u.label, "%s/%s", name, image);
	q.path = path;
	q.upload = f;
	q.upload_size = u.size;
	q.content_digest = digest;
	r = run_mutation(o, &q, u.label, print_uploaded, &u);
	if (ferror(f)) {
		fprintf(stderr, "wardenctl: %s: reading failed during the upload\n", file);
		return EXIT_USAGE;
	}
	return r;
}
