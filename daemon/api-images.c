/* SPDX-License-Identifier: MIT */
/*
 * PUT|DELETE /cells/NAME/images/FILE. api_begin() already streamed an
 * upload's body to a temp file (store.c) and checked its name; here it is
 * committed, off the loop, or refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "auth.h"
#include "cell.h"
#include "events.h"
#include "http.h"
#include "macro.h"
#include "manager.h"
#include "store.h"

static bool image_in_use(const CellSpec *s, const char *file) {
	const char *refs[SPEC_MAX_IMAGE_REFS];
	size_t n = cell_spec_image_refs(s, refs);

	for (size_t i = 0; i < n; i++)
		if (strcmp(refs[i], file) == 0)
			return true;
	return false;
}

static bool image_is_rootfs(const CellSpec *s, const char *file) {
	return s && s->container && strcmp(s->container->rootfs, file) == 0;
}

/* An upload's commit (fsync of up to api.max_image_bytes, rename, fsync
 * of the directory) runs on a worker; the request waits, suspended. */
typedef struct UploadJob {
	Manager *manager;
	HttpRequest *request;
	Upload *upload;
	uint8_t want[SHA256_LEN];
	char cell[CELL_NAME_MAX + 1];
	char file[IMAGE_NAME_MAX + 1];
	bool done, replaced;
	bool rootfs; /* a container cell's rootfs: its entries are checked first */
	char why[160];
	int result;
	size_t size;
	char hex[2 * SHA256_LEN + 1];
} UploadJob;

static int upload_job_run(void *arg) {
	UploadJob *j = arg;
	if (j->rootfs && (j->result = backend_rootfs_check(upload_temp_path(j->upload), j->why, sizeof j->why)) < 0) {
		upload_abort(TAKE_PTR(j->upload));
		j->result = -ENOEXEC;
		return j->result;
	}
	j->result = upload_commit(TAKE_PTR(j->upload), j->want, &j->replaced, j->hex, &j->size);
	return j->result;
}

static void upload_job_done(const BackendCompletion *d, void *userdata) {
	UploadJob *j = userdata;
	(void)d;
	j->done = true;
	http_request_resume(j->request);
}

/* The client left before the answer: what was stored stays stored. */
static void upload_job_free(void *userdata) {
	UploadJob *j = userdata;
	if (j->upload)
		upload_abort(j->upload);
	free(j);
}

static void upload_job_reply(HttpRequest *r, void *userdata) {
	UploadJob *j = userdata;

	if (!j->done)
		/* wardend stopped first; the worker finished, unheard */
		http_reply_problem(r, 503, "Service Unavailable",
		                   "wardend is shutting down; GET the image list to see whether it was stored");
	else if (j->result == -EBADMSG)
		http_reply_problem(r, 422, NULL,
		                   "digest mismatch: the %zu bytes received have SHA-256 %s, not the one in Content-Digest; "
		                   "nothing was stored", j->size, j->hex);
	else if (j->result == -ENOEXEC)
		http_reply_problem(r, 422, NULL, "not a usable container rootfs: %s; nothing was stored", j->why);
	else if (j->result < 0)
		http_reply_problem(r, 500, NULL, "storing the image failed: %s", strerror(-j->result));
	else {
		events_emit_json(j->manager, "image",
		                 json_pack("{s:s, s:s, s:I, s:s, s:s}", "cell", j->cell, "name", j->file, "size",
		                           (json_int_t)j->size, "sha256", j->hex, "change", "uploaded"));
		http_reply_json(r, j->replaced ? 200 : 201,
		                json_pack("{s:s, s:I, s:s}", "name", j->file, "size", (json_int_t)j->size, "sha256", j->hex));
	}
	api_answered(j->manager, r);
	free(j);
}

void route_upload(Manager *m, Cell *c, const char *file, HttpRequest *r) {
	Upload *u = NULL;
	bool too_large;
	int error, k;
	UploadJob *j;

	/* api_begin() set the sink; take the upload over from it. */
	(void)http_request_sink_size(r, &too_large, &error);
	u = http_request_sink_userdata(r);
	if (!u) {
		http_reply_problem(r, 500, NULL, "the upload was not set up");
		return;
	}
	http_request_clear_sink(r);
	if (too_large || error) {
		upload_abort(u);
		if (too_large)
			http_reply_problem(r, 413, "Payload Too Large", "image larger than api.max_image_bytes (%llu)",
			                   (unsigned long long)manager_config(m)->api.max_image_bytes);
		else
			http_reply_problem(r, 500, NULL, "writing the image failed: %s", strerror(error));
		return;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		upload_abort(u);
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	*j = (UploadJob){ .manager = m, .request = r, .upload = u };
	snprintf(j->cell, sizeof j->cell, "%s", cell_name(c));
	snprintf(j->file, sizeof j->file, "%s", file);
	j->rootfs = image_is_rootfs(cell_spec(c), file) || image_is_rootfs(cell_latest_spec(c), file);
	(void)content_digest_parse(http_request_header(r, "Content-Digest"), j->want);
	/* Unordered with the cell's own requests: its recovery must not wait
	 * for a disk flush. */
	k = backend_call_async(manager_queue(m), NULL, upload_job_run, j, upload_job_done, j, NULL);
	if (k < 0) {
		upload_abort(u);
		free(j);
		http_reply_problem(r, 500, NULL, "storing the image failed: %s", strerror(-k));
		return;
	}
	http_request_suspend(r, upload_job_reply, upload_job_free, j);
}

void route_image_delete(Manager *m, Cell *c, const char *file, HttpRequest *r) {
	int k;

	if (!image_name_is_valid(file) || !store_image_exists(m, cell_name(c), file)) {
		http_reply_problem(r, 404, "Not Found", "cell \"%s\" has no image \"%s\"", cell_name(c), file);
		return;
	}
	if (image_in_use(cell_spec(c), file) || image_in_use(cell_latest_spec(c), file)) {
		http_reply_problem(r, 409, "Conflict", "image \"%s\" is used by the spec of cell \"%s\"", file,
		                   cell_name(c));
		return;
	}
	k = store_remove_image(m, cell_name(c), file);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "removing the image failed: %s", strerror(-k));
		return;
	}
	events_emit_json(m, "image", json_pack("{s:s, s:s, s:s}", "cell", cell_name(c), "name", file, "change",
	                                       "deleted"));
	http_reply_text(r, 204, "text/plain", NULL, 0);
}
