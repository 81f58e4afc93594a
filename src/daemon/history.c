/* history.c - the per-VM sample history on its way to the store (see
 * history.h for why rows wait in memory). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/history.h"
#include "vcpud/util.h"

/* A VM whose writes keep failing keeps this many rows at most (its
 * oldest are dropped). */
#define HISTORY_MAX_ROWS (4 * HISTORY_FLUSH_TICKS)

struct hrow {
	int64_t ts_ms;
	double usage_pct, steal_pct, cap_pct;
};

struct hvm {
	char name[NAME_MAX_LEN + 1];
	uint32_t slot;         /* due at the ticks where (tick + slot) % FLUSH == 0 */
	bool noted;            /* in this tick's inventory */
	struct hrow *rows;
	size_t n, cap;
};

struct history {
	struct hvm *vms;
	size_t n, cap;
	struct name_index ix;
	/* per-write buffers */
	struct store_sample *out;
	size_t cap_out;
	const char **prune;
	size_t cap_prune;
};

struct history *history_new(void)
{
	struct history *h = xcalloc(1, sizeof(*h));
	name_index_init(&h->ix, sizeof(struct hvm), offsetof(struct hvm, name));
	return h;
}

void history_free(struct history *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->vms[i].rows);
	free(h->vms);
	name_index_clear(&h->ix);
	free(h->out);
	free(h->prune);
	free(h);
}

static struct hvm *hvm_get(struct history *h, const char *vm)
{
	size_t i = name_index_find(&h->ix, h->vms, vm);
	if (i != SIZE_MAX)
		return &h->vms[i];
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->vms = xrealloc(h->vms, h->cap * sizeof(*h->vms));
	}
	struct hvm *v = &h->vms[h->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", vm);
	v->slot = (uint32_t)(hash_str(HASH_SEED, vm) % HISTORY_FLUSH_TICKS);
	name_index_add(&h->ix, h->vms, h->n - 1);
	return v;
}

void history_note(struct history *h, const char *vm, bool sampled, int64_t ts_ms,
		  double usage_pct, double steal_pct, double cap_pct)
{
	struct hvm *v = hvm_get(h, vm);
	v->noted = true;
	if (!sampled)
		return;
	if (v->n == HISTORY_MAX_ROWS) {
		memmove(v->rows, v->rows + 1, (v->n - 1) * sizeof(*v->rows));
		v->n--;
	}
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : HISTORY_FLUSH_TICKS + 2;
		if (v->cap > HISTORY_MAX_ROWS)
			v->cap = HISTORY_MAX_ROWS;
		v->rows = xrealloc(v->rows, v->cap * sizeof(*v->rows));
	}
	v->rows[v->n++] = (struct hrow){ ts_ms, usage_pct, steal_pct, cap_pct };
}

/* Add v's rows to the write buffer. */
static void rows_out(struct history *h, const struct hvm *v, size_t *n_out)
{
	if (*n_out + v->n > h->cap_out) {
		h->cap_out = (*n_out + v->n) * 2;
		h->out = xrealloc(h->out, h->cap_out * sizeof(*h->out));
	}
	for (size_t k = 0; k < v->n; k++)
		h->out[(*n_out)++] = (struct store_sample){ v->name, v->rows[k].ts_ms,
							    v->rows[k].usage_pct,
							    v->rows[k].steal_pct,
							    v->rows[k].cap_pct };
}

/* Whether v's rows go to the store at this write: at its turn, at a stop
 * (all), or when it is no longer in the inventory. */
static bool due(const struct hvm *v, uint64_t tick, bool all)
{
	return all || !v->noted || (tick + v->slot) % HISTORY_FLUSH_TICKS == 0;
}

/* Write the rows of the VMs that are due (and of those not noted),
 * prune the noted due ones; then clear what was written, forget what was
 * not noted and reset the marks. */
static int write_some(struct history *h, struct store *st, uint64_t tick, bool all,
		      int64_t keep_since_ms, struct error **err)
{
	size_t n_out = 0, n_prune = 0;
	if (h->cap_prune < h->n) {
		h->cap_prune = h->n;
		h->prune = xrealloc(h->prune, h->cap_prune * sizeof(*h->prune));
	}
	for (size_t i = 0; i < h->n; i++) {
		struct hvm *v = &h->vms[i];
		if (!due(v, tick, all))
			continue;
		rows_out(h, v, &n_out);
		if (v->noted)
			h->prune[n_prune++] = v->name;
	}
	int written = 0;
	if (n_out || n_prune) {
		written = store_samples_add(st, h->out, n_out, h->prune, n_prune, keep_since_ms,
					    err);
	}
	size_t j = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct hvm *v = &h->vms[i];
		if (!v->noted) {
			free(v->rows); /* released: its rows would be skipped anyway */
			continue;
		}
		if (due(v, tick, all) && written >= 0)
			v->n = 0;
		v->noted = false;
		h->vms[j++] = *v;
	}
	if (j != h->n)
		name_index_build(&h->ix, h->vms, j);
	h->n = j;
	return written;
}

int history_write(struct history *h, struct store *st, uint64_t tick, int64_t keep_since_ms,
		  struct error **err)
{
	return write_some(h, st, tick, false, keep_since_ms, err);
}

int history_flush_all(struct history *h, struct store *st, int64_t keep_since_ms,
		      struct error **err)
{
	/* every VM counts as noted: a stop forgets nothing */
	for (size_t i = 0; i < h->n; i++)
		h->vms[i].noted = true;
	return write_some(h, st, 0, true, keep_since_ms, err);
}

void history_pending(const struct history *h, const char *vm, int64_t since_ms,
		     struct store_sample **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t i = name_index_find(&h->ix, h->vms, vm);
	if (i == SIZE_MAX || !h->vms[i].n)
		return;
	const struct hvm *v = &h->vms[i];
	*out = xcalloc(v->n, sizeof(**out));
	for (size_t k = 0; k < v->n; k++)
		if (v->rows[k].ts_ms >= since_ms)
			(*out)[(*n)++] = (struct store_sample){ NULL, v->rows[k].ts_ms,
								v->rows[k].usage_pct,
								v->rows[k].steal_pct,
								v->rows[k].cap_pct };
}

size_t history_waiting(const struct history *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		n += h->vms[i].n;
	return n;
}
