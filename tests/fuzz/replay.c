/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * replay.c - runs a fuzz target's inputs without libFuzzer, so that the
 * corpus kept in the tree replays in every "make check" build (gcc too):
 *
 *   replay-TARGET [FILE|DIR ...]
 *
 * Linked with one target (fuzz_*.c); calls its LLVMFuzzerInitialize() and
 * then LLVMFuzzerTestOneInput() once per file (a directory: every file in
 * it, in name order).  With no argument it replays SHF_FUZZ_CORPUS, the
 * target's corpus in the source tree (set by the build).  Exits 0 when
 * every input ran, 99 when one could not be read; a crash or a sanitizer
 * report ends it as it would end the fuzzer.  SHF_FUZZ_REPLAY_VERBOSE=1
 * names each input before it runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;
static unsigned long runs;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap ? cap * 2 : 65536);

			if (!nb) {
				fclose(f);
				free(buf);
				return -1;
			}
			buf = nb;
			cap = cap ? cap * 2 : 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	runs++;
	free(buf);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL;
	size_t n = 0, i;
	int rc = 0;
	DIR *d;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char **nn;

		if (de->d_name[0] == '.')
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp);
	for (i = 0; i < n; i++) {
		if (run_file(names[i]) < 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	const char *e = getenv("SHF_FUZZ_REPLAY_VERBOSE");
	int i, rc = 0;

	verbose = e && *e == '1';
	LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
#ifdef SHF_FUZZ_CORPUS
		rc = run_path(SHF_FUZZ_CORPUS);
#else
		fprintf(stderr, "usage: %s FILE|DIR ...\n", argv[0]);
		return 2;
#endif
	}
	for (i = 1; i < argc; i++)
		if (run_path(argv[i]) < 0)
			rc = -1;
	printf("replay: %lu input(s) run\n", runs);
	return rc < 0 ? 99 : 0;
}
