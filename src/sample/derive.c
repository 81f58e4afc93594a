/* derive.c - the pure half of the sampler: parsing schedstat text, turning
 * two readings of a thread into usage and steal over a window (with every
 * clamp the kernel's accounting calls for), the per-VM and per-tenant
 * aggregates, and the cpu.max throttled share from cpu.stat. No I/O: the
 * stateful sampler (sampler.c) and the tests feed it numbers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vcpud/sample.h"
#include "vcpud/util.h"

/* The text in a message: at most 64 characters, C escapes for the rest. */
#define QUOTE_SIZE (64 * 4 + 4)
static const char *quote(const char *buf, size_t len, char out[static QUOTE_SIZE])
{
	size_t o = 0;
	for (size_t i = 0; i < len && i < 64; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (len > 64) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static int bad(struct error **err, int code, const char *buf, size_t len, const char *why)
{
	char q[QUOTE_SIZE];
	return error_set(err, code, "malformed schedstat '%s': %s", quote(buf, len, q), why);
}

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

/* Hand-rolled on purpose: it runs once per vCPU thread per tick; the bench
 * measures it against sscanf(). Up to 19 digits cannot overflow, so only a
 * 20th is checked. */
int schedstat_parse(const char *buf, size_t len, uint64_t *cpu_ns, uint64_t *run_delay_ns,
		    struct error **err)
{
	if (!buf || len == 0)
		return error_set(err, EINVAL, "malformed schedstat: empty");
	const char *p = buf, *end = buf + len;
	uint64_t v[2] = { 0, 0 };
	size_t nf = 0;
	for (;;) {
		if (p == end || !is_digit(*p))
			return bad(err, EINVAL, buf, len,
				   p == end ? "truncated (no newline)" : "expected a number");
		const char *lim = end - p > 19 ? p + 19 : end;
		uint64_t x = 0;
		while (p < lim && is_digit(*p))
			x = x * 10 + (uint64_t)(*p++ - '0');
		if (p < end && is_digit(*p)) {
			unsigned d = (unsigned)(*p++ - '0');
			if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10) ||
			    (p < end && is_digit(*p)))
				return bad(err, ERANGE, buf, len, "number out of range");
			x = x * 10 + d;
		}
		if (nf < 2)
			v[nf] = x;
		nf++;
		if (p == end)
			return bad(err, EINVAL, buf, len, "truncated (no newline)");
		if (*p == ' ') {
			p++;
			continue;
		}
		if (*p != '\n')
			return bad(err, EINVAL, buf, len, "expected a space or a newline");
		p++;
		break;
	}
	if (p != end)
		return bad(err, EINVAL, buf, len, "text after the newline");
	if (nf < 2)
		return bad(err, EINVAL, buf, len, "one field, want cpu time and run_delay");
	*cpu_ns = v[0];
	*run_delay_ns = v[1];
	return 0;
}

const char *sample_state_name(enum sample_state s)
{
	static const char *const names[SAMPLE_STATE_LAST] = {
		[SAMPLE_VALID] = "valid",
		[SAMPLE_NO_BASELINE] = "no-baseline",
		[SAMPLE_SHORT_WINDOW] = "short-window",
		[SAMPLE_CLOCK_JUMP] = "clock-jump",
		[SAMPLE_COUNTER_RESET] = "counter-reset",
		[SAMPLE_GONE] = "gone",
		[SAMPLE_ERROR] = "error",
	};
	if ((unsigned)s >= SAMPLE_STATE_LAST)
		return NULL;
	return names[s];
}

enum sample_state sample_derive(const struct sample_counters *prev,
				const struct sample_counters *cur, int64_t dt_ns,
				int64_t interval_ns, struct sample_delta *out)
{
	memset(out, 0, sizeof(*out));
	if (!prev) {
		out->state = SAMPLE_NO_BASELINE;
		return out->state;
	}
	/* CLOCK_MONOTONIC never goes backwards; if the caller's clock did,
	 * nothing measured against it means anything: start over. */
	if (dt_ns < 0) {
		out->state = SAMPLE_CLOCK_JUMP;
		return out->state;
	}
	/* Shorter than one cpu.max period (a tick delivered twice, a manual
	 * tick right after a timed one, dt = 0): a capped thread would read
	 * 0% or 100% depending on where in the period the window fell, and
	 * run_delay lands in lumps. Report nothing and keep the old baseline,
	 * so the next tick measures the longer window. */
	if (dt_ns < SAMPLE_MIN_WINDOW_NS) {
		out->state = SAMPLE_SHORT_WINDOW;
		return out->state;
	}
	/* Far longer than a tick: the daemon was stopped or the host
	 * suspended. The figures would be a stale average over the gap
	 * reported as "now"; restart the baseline instead. */
	if (interval_ns > 0 && interval_ns <= INT64_MAX / SAMPLE_JUMP_FACTOR &&
	    dt_ns > interval_ns * SAMPLE_JUMP_FACTOR) {
		out->state = SAMPLE_CLOCK_JUMP;
		return out->state;
	}
	/* Counters only grow for one thread: a decrease means other numbers
	 * behind the same name (a recycled tid in a fake tree, a file
	 * rewritten). */
	if (cur->cpu_ns < prev->cpu_ns || cur->run_delay_ns < prev->run_delay_ns) {
		out->state = SAMPLE_COUNTER_RESET;
		return out->state;
	}
	double per_ns = 100.0 / (double)dt_ns;
	double usage = (double)(cur->cpu_ns - prev->cpu_ns) * per_ns;
	double steal = (double)(cur->run_delay_ns - prev->run_delay_ns) * per_ns;
	/* sum_exec_runtime of a running task is brought up to date only at
	 * the scheduler tick or a switch, so a window can gain up to a tick
	 * of someone else's time: one thread never runs more than the wall. */
	if (usage > 100.0) {
		usage = 100.0;
		out->flags |= SAMPLE_FLAG_USAGE_CLAMPED;
	}
	/* run_delay is added only when the task next runs (sched_info_arrive),
	 * so a long wait (a throttled thread waits out whole periods) lands in
	 * one window and can read above 1.0 (FACTS.md). The thread waited the
	 * whole window at most. */
	if (steal > 100.0) {
		steal = 100.0;
		out->flags |= SAMPLE_FLAG_STEAL_CLAMPED;
	}
	/* At least one cpu.max period but fewer than ten: reported, flagged,
	 * since a capped thread's share still depends on the window's phase. */
	if (dt_ns < SAMPLE_STEADY_WINDOW_NS)
		out->flags |= SAMPLE_FLAG_SHORT_WINDOW;
	out->state = SAMPLE_VALID;
	out->usage_pct = usage;
	out->steal_pct = steal;
	out->window_ns = dt_ns;
	return out->state;
}

void sample_agg_add(struct sample_agg *a, const struct sample_vcpu *v)
{
	a->n_vcpus++;
	if (v->gone)
		a->n_gone++;
	if (!v->valid)
		return;
	a->n_valid++;
	a->usage_sum_pct += v->usage_pct;
	a->steal_sum_pct += v->steal_pct;
	if (a->n_valid == 1 || v->steal_pct > a->steal_max_pct)
		a->steal_max_pct = v->steal_pct;
	a->flags |= v->flags;
	if (v->window_ns > a->window_ns)
		a->window_ns = v->window_ns;
}

void sample_agg_add_all(struct sample_agg *a, const struct sample_vcpu *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sample_agg_add(a, &v[i]);
}

void sample_agg_merge(struct sample_agg *a, const struct sample_agg *b)
{
	if (b->n_valid && (!a->n_valid || b->steal_max_pct > a->steal_max_pct))
		a->steal_max_pct = b->steal_max_pct;
	a->n_vcpus += b->n_vcpus;
	a->n_valid += b->n_valid;
	a->n_gone += b->n_gone;
	a->usage_sum_pct += b->usage_sum_pct;
	a->steal_sum_pct += b->steal_sum_pct;
	a->flags |= b->flags;
	if (b->window_ns > a->window_ns)
		a->window_ns = b->window_ns;
}

double sample_agg_steal_mean_pct(const struct sample_agg *a)
{
	return a->n_valid ? a->steal_sum_pct / a->n_valid : 0.0;
}

bool sample_throttled_frac(const struct cgroup_cpu_stat *prev, const struct cgroup_cpu_stat *cur,
			   int64_t dt_ns, unsigned n_cpus, double *frac)
{
	*frac = 0.0;
	if (!prev || !cur || n_cpus == 0 || dt_ns < SAMPLE_MIN_WINDOW_NS ||
	    cur->throttled_usec < prev->throttled_usec)
		return false;
	double f = (double)(cur->throttled_usec - prev->throttled_usec) * 1000.0 /
		   ((double)dt_ns * (double)n_cpus);
	/* Throttled time is added when the group is unthrottled, so like
	 * run_delay it can land in a later window than it happened in. */
	*frac = f > 1.0 ? 1.0 : f;
	return true;
}
