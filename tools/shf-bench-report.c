// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shf-bench-report.c - what shf-bench(1) measures and says: the clocks,
 * the latency percentiles of the workers' merged histograms, the live
 * lines printed while a phase runs (read from the workers' counters in
 * shared memory every second), and the summaries of the table phases.
 */
#include "config.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shf-bench.h"

const char *const lat_key[5] = { "p50", "p99", "p99_9", "p99_99", "max" };

/* ------------------------------------------------------------ clocks */

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The TSC rate, measured against CLOCK_MONOTONIC over 50 ms. */
void ticks_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
	double t0 = now_s(), t1;
	uint64_t r0 = ticks(), r1;

	do
		t1 = now_s();
	while (t1 - t0 < 0.05);
	r1 = ticks();
	g_ticks_per_ns = (double)(r1 - r0) / ((t1 - t0) * 1e9);
	if (g_ticks_per_ns <= 0)
		g_ticks_per_ns = 1.0;
#endif
}

/* Middle of a bucket, in ticks. */
static double bucket_mid(unsigned b)
{
	unsigned e, s;

	if (b < LIN)
		return b;
	e = (b - LIN) / SUB + 6;
	s = (b - LIN) % SUB;
	return ((double)(SUB + s) + 0.5) * (double)(1ULL << (e - 5));
}

void percentiles(int be, int ph, struct phase_res *pr)
{
	static const double q[4] = { 0.50, 0.99, 0.999, 0.9999 };
	uint64_t total = 0, cum = 0, max = 0, h;
	unsigned p, b, k = 0;

	for (p = 0; p < opt_procs; p++) {
		struct proc_stat *st = &g_stat[be * opt_procs + p];

		for (b = 0; b < NBUCKETS; b++)
			total += st->hist[ph][b];
		if (st->max[ph] > max)
			max = st->max[ph];
	}
	memset(pr->lat_ns, 0, sizeof(pr->lat_ns));
	for (b = 0; b < NBUCKETS && k < 4 && total; b++) {
		h = 0;
		for (p = 0; p < opt_procs; p++)
			h += g_stat[be * opt_procs + p].hist[ph][b];
		cum += h;
		while (k < 4 && (double)cum >= q[k] * (double)total) {
			double ns = bucket_mid(b) / g_ticks_per_ns;

			pr->lat_ns[k++] = (uint64_t)(ns + 0.5);
		}
	}
	pr->lat_ns[4] = (uint64_t)((double)max / g_ticks_per_ns + 0.5);
	for (k = 0; k < 4; k++)
		if (pr->lat_ns[k] > pr->lat_ns[4])
			pr->lat_ns[k] = pr->lat_ns[4];
}

/* ------------------------------------------------------ live lines */

static void live_header(void)
{
	char col[16];
	unsigned p;

	fprintf(g_live, "-OP  ");
	for (p = 0; p < opt_procs; p++) {
		snprintf(col, sizeof(col), "-P%u", p);
		fprintf(g_live, " %5s", col);
	}
	fprintf(g_live, " ---TOTAL -OPS/s\n");
	fprintf(g_live, "---- ");
	for (p = 0; p < opt_procs; p++)
		fprintf(g_live, " %5s", "k/s");
	fprintf(g_live, " -----ops ----/s\n");
}

/* The live lines of one phase: the counters read at the last line. */
struct live {
	uint64_t last[BENCH_KIDS_MAX], lh, lm;
	double tl;
};

/* A line: each worker's rate, the total, and CACHE's hit ratio. */
static void live_line(struct live *lv, const struct proc_stat *st, int ph,
		      double t)
{
	static unsigned lines;
	uint64_t sum = 0, h, m;
	unsigned p;

	if (lines++ % HDR_EVERY == 0)
		live_header();
	fprintf(g_live, "%-5s", ph_name[ph]);
	for (p = 0; p < opt_procs; p++) {
		uint64_t o = atomic_load_explicit(&st[p].ops,
						  memory_order_acquire);

		fprintf(g_live, " %4.0fk",
			(double)(o - lv->last[p]) / (t - lv->tl) / 1e3);
		sum += o - lv->last[p];
		lv->last[p] = o;
	}
	g_total_ops += sum;
	fprintf(g_live, " %7.1fM %6.2fM", (double)g_total_ops / 1e6,
		(double)sum / (t - lv->tl) / 1e6);
	if (ph == PH_CACHE) {
		/* hits of the interval's gets (timeouts aside) */
		for (h = m = 0, p = 0; p < opt_procs; p++) {
			h += atomic_load_explicit(&st[p].hits,
						  memory_order_relaxed);
			m += atomic_load_explicit(&st[p].misses,
						  memory_order_relaxed);
		}
		if (h + m > lv->lh + lv->lm)
			fprintf(g_live, " hit %5.1f%%",
				100.0 * (double)(h - lv->lh) /
					(double)(h + m - lv->lh - lv->lm));
		lv->lh = h;
		lv->lm = m;
	}
	fputc('\n', g_live);
	fflush(g_live);
	lv->tl = t;
}

/* Wait for one byte from each worker, printing a line every second when
 * ph >= 0.  -1 on a worker error or a signal. */
int parent_wait(int done_fd, int be, int ph, double *secs)
{
	const struct proc_stat *st = &g_stat[be * opt_procs];
	struct live lv = { .tl = now_s() };
	double t0 = lv.tl, next = t0 + 1.0, t;
	unsigned done = 0;
	char buf[64];
	ssize_t r;
	int ms, i;

	while (done < opt_procs) {
		struct pollfd pfd = { done_fd, POLLIN, 0 };

		if (g_stop)
			return -1;
		t = now_s();
		ms = ph < 0 ? 1000 : (int)((next - t) * 1000.0) + 1;
		if (ms < 0)
			ms = 0;
		if (poll(&pfd, 1, ms) > 0) {
			r = read(done_fd, buf, sizeof(buf));
			if (r <= 0)
				return -1; /* every worker is gone */
			for (i = 0; i < r; i++)
				if (buf[i] != 'k')
					return -1;
			done += (unsigned)r;
		}
		if (ph < 0)
			continue;
		t = now_s();
		if (t < next && done < opt_procs)
			continue;
		live_line(&lv, st, ph, t);
		next += 1.0;
		if (next < t)
			next = t + 1.0;
	}
	*secs = now_s() - t0;
	return 0;
}

/* ------------------------------------------------------ the host */

/*
 * What the figures depend on most: the CPU model, the CPUs this process
 * may run on, and the L3 cache (a table much larger than it misses on
 * every get; one that fits does not).  0 where unknown.
 */
struct host {
	char cpu[128];
	long cpus;
	uint64_t l3_bytes;
	const char *l3_from; /* "sysfs" or "cpuid" (glibc's, as a VM says) */
};

static void host_get(struct host *h)
{
	char line[256], *p;
	unsigned long long v;
	FILE *f;

	memset(h, 0, sizeof(*h));
	snprintf(h->cpu, sizeof(h->cpu), "unknown");
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		p += 1 + strspn(p + 1, " \t");
		p[strcspn(p, "\n")] = '\0';
		snprintf(h->cpu, sizeof(h->cpu), "%s", p);
		break;
	}
	if (f)
		fclose(f);
	h->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	/* sysfs says "32768K"; glibc's sysconf() is 0 on some CPUs */
	f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
	if (f && fscanf(f, "%llu", &v) == 1) {
		int c = fgetc(f);

		h->l3_bytes = (uint64_t)v * (c == 'K' ? 1024 : c == 'M' ?
					     1048576 : 1);
		h->l3_from = "sysfs";
	}
	if (f)
		fclose(f);
	if (!h->l3_bytes) {
		long s = sysconf(_SC_LEVEL3_CACHE_SIZE);

		h->l3_bytes = s > 0 ? (uint64_t)s : 0;
		h->l3_from = "cpuid";
	}
}

void print_host_text(void)
{
	struct host h;

	host_get(&h);
	printf("\nhost: %s, %ld CPUs, L3 ", h.cpu, h.cpus);
	if (h.l3_bytes)
		printf("%.1f MiB (%s)\n", (double)h.l3_bytes / 1048576.0,
		       h.l3_from);
	else
		printf("unknown\n");
}

static void json_chars(const char *s);

/* ,"host":{...} of the JSON summary. */
static void print_host_json(void)
{
	struct host h;

	host_get(&h);
	printf(",\"host\":{\"cpu\":\"");
	json_chars(h.cpu);
	printf("\",\"cpus\":%ld,\"l3_bytes\":%" PRIu64 ",\"l3_from\":\"%s\"}",
	       h.cpus, h.l3_bytes, h.l3_bytes ? h.l3_from : "none");
}

/* ------------------------------------------------------ summaries */

double ops_s(const struct phase_res *pr)
{
	return pr->secs > 0 ? (double)pr->ops / pr->secs : 0;
}

void print_text(const struct be_res *res)
{
	int be, i, k;

	if (!opt_nphases)
		return;
	printf("\nsummary: %u processes, %" PRIu64 " keys, key %u bytes%s, "
	       "value %u bytes%s, MIX %u%% del+put, %s\n",
	       opt_procs, opt_keys, opt_klen, opt_sorted ? " (sorted)" : "",
	       opt_vlen, opt_fixed ? " (fixed)" : "", opt_mix, opt_dir);
	for (be = 0; be < NBE; be++) {
		if (!res[be].ran)
			continue;
		printf("%-6s  phase        ops   secs    ops/s   "
		       "p50 us   p99 us p99.9 us p99.99 us   max us\n",
		       be_name[be]);
		for (i = 0; i < opt_nphases; i++) {
			const struct phase_res *pr = &res[be].ph[opt_order[i]];

			printf("%-6s  %-5s %10" PRIu64 " %6.2f %7.3fM",
			       be_name[be], ph_name[opt_order[i]], pr->ops,
			       pr->secs, ops_s(pr) / 1e6);
			for (k = 0; k < 5; k++)
				printf(" %8.2f", (double)pr->lat_ns[k] / 1e3);
			printf("\n");
		}
		if (res[be].ph[PH_PUT].ran) {
			printf("%-6s  longest put: %.3f ms\n", be_name[be],
			       (double)res[be].ph[PH_PUT].lat_ns[4] / 1e6);
			printf("%-6s  %s per key: %.1f bytes (%" PRIu64
			       " bytes after PUT)\n",
			       be_name[be], opt_dir,
			       (double)res[be].file_bytes / (double)opt_keys,
			       res[be].file_bytes);
		}
		if (be == BE_SHF && opt_huge && res[be].ph[PH_PUT].ran) {
			if (res[be].huge_errno)
				printf("%-6s  2 MiB pages: %s\n", be_name[be],
				       strerror(res[be].huge_errno));
			else
				printf("%-6s  2 MiB pages: %" PRIu64 " of %"
				       PRIu64 " whole 2 MiB gathered after "
				       "PUT in %.2f s (--huge)\n",
				       be_name[be], res[be].huge_done,
				       res[be].huge_all, res[be].huge_secs);
		}
		printf("%-6s  errors: %" PRIu64 "\n", be_name[be],
		       res[be].errors);
	}
	if (res[BE_SHF].ran && res[BE_LMDB].ran) {
		printf("ratio   phase  libshf/LMDB\n");
		for (i = 0; i < opt_nphases; i++) {
			int ph = opt_order[i];
			double l = ops_s(&res[BE_LMDB].ph[ph]);

			printf("ratio   %-5s  %6.2fx\n", ph_name[ph],
			       l > 0 ? ops_s(&res[BE_SHF].ph[ph]) / l : 0);
		}
		if (res[BE_SHF].ph[PH_PUT].ran && res[BE_LMDB].file_bytes)
			printf("ratio   bytes  %6.2fx\n",
			       (double)res[BE_SHF].file_bytes /
				       (double)res[BE_LMDB].file_bytes);
	}
	if (opt_phase[PH_BATCH])
		printf("note: BATCH latency is per call of %u keys\n",
		       BATCH_KEYS);
}

/* s as a JSON string's contents (no quotes). */
static void json_chars(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
}

static void print_json_phases(const struct be_res *r)
{
	int i, k;

	for (i = 0; i < opt_nphases; i++) {
		const struct phase_res *pr = &r->ph[opt_order[i]];

		printf("%s{\"phase\":\"%s\",\"ops\":%" PRIu64
		       ",\"secs\":%.4f,\"ops_per_sec\":%.0f,"
		       "\"lat_ns\":{",
		       i ? "," : "", ph_lower[opt_order[i]], pr->ops, pr->secs,
		       ops_s(pr));
		for (k = 0; k < 5; k++)
			printf("%s\"%s\":%" PRIu64, k ? "," : "", lat_key[k],
			       pr->lat_ns[k]);
		printf("}}");
	}
}

void print_json(const struct be_res *res)
{
	int be, i, first = 1;

	printf("{\"tool\":\"shf-bench\",\"version\":\"%s\",\"procs\":%u,"
	       "\"keys\":%" PRIu64 ",\"key_len\":%u,\"val_len\":%u,"
	       "\"fixed\":%s,\"sorted_keys\":%s,\"mix_pct\":%u,\"batch_keys\":%u,\"dir\":\"",
	       shf_version(), opt_procs, opt_keys, opt_klen, opt_vlen,
	       opt_fixed ? "true" : "false", opt_sorted ? "true" : "false",
	       opt_mix, BATCH_KEYS);
	json_chars(opt_dir);
	printf("\"");
	print_host_json();
	printf(",\"results\":[");
	for (be = 0; be < NBE; be++) {
		if (!res[be].ran)
			continue;
		printf("%s{\"store\":\"%s\",\"file_bytes\":%" PRIu64
		       ",\"bytes_per_key\":%.2f,\"errors\":%" PRIu64
		       ",\"phases\":[",
		       first ? "" : ",", be_name[be], res[be].file_bytes,
		       (double)res[be].file_bytes / (double)opt_keys,
		       res[be].errors);
		first = 0;
		print_json_phases(&res[be]);
		printf("]}");
	}
	printf("]");
	if (res[BE_SHF].ran && res[BE_LMDB].ran) {
		printf(",\"ratio\":{");
		for (i = 0; i < opt_nphases; i++) {
			int ph = opt_order[i];
			double l = ops_s(&res[BE_LMDB].ph[ph]);

			printf("%s\"%s\":%.3f", i ? "," : "", ph_lower[ph],
			       l > 0 ? ops_s(&res[BE_SHF].ph[ph]) / l : 0);
		}
		printf("}");
	}
}
