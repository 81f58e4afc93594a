/* history.h - the per-VM sample history on its way to the store.
 *
 * A row per VM per tick written at once is a row in a different B-tree
 * page for every VM: at 1,000 VMs, some 1,000 dirty pages and 1,500 WAL
 * writes a tick (about 6 MB/s, 500 GB a day). Here each VM's rows wait in
 * memory and are written together once every HISTORY_FLUSH_TICKS ticks,
 * the VMs spread over the ticks by a hash of their name, so that a tick
 * writes the rows of 1/HISTORY_FLUSH_TICKS of the VMs into a few pages
 * each, and prunes what those VMs have past the retention by their
 * primary key. The API merges the rows still waiting
 * (history_pending), so nothing is missing from `vcpuctl vm stats`; a
 * crash loses at most HISTORY_FLUSH_TICKS ticks of history; a clean stop
 * writes everything (history_flush_all). */
#ifndef VCPUD_DAEMON_HISTORY_H
#define VCPUD_DAEMON_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"
#include "vcpud/store.h"

#define HISTORY_FLUSH_TICKS 30

struct history;

struct history *history_new(void);
void history_free(struct history *h);

/* This tick's VMs, one call each, with the figures when it was sampled
 * (sampled false: a VM that is stopped or gone, only pruned) and the
 * throttle's cap on it (% of one pCPU; NAN: none). */
void history_note(struct history *h, const char *vm, bool sampled, int64_t ts_ms,
		  double usage_pct, double steal_pct, double cap_pct);

/* Write the rows of the VMs due at `tick` and of those no longer noted
 * (then forgotten), and prune the due ones' rows older than keep_since_ms.
 * A failure keeps the rows for the next try (up to a bound). Returns the
 * rows written, or -1. */
int history_write(struct history *h, struct store *st, uint64_t tick, int64_t keep_since_ms,
		  struct error **err);

/* Every row still waiting, and every VM's prune (a clean stop). */
int history_flush_all(struct history *h, struct store *st, int64_t keep_since_ms,
		      struct error **err);

/* The rows of `vm` still waiting with ts_ms >= since_ms, oldest first, in
 * *out (vm NULL; freed by the caller); 0 rows when none. */
void history_pending(const struct history *h, const char *vm, int64_t since_ms,
		     struct store_sample **out, size_t *n);

/* Rows waiting in memory (for the benchmark and tests). */
size_t history_waiting(const struct history *h);

#endif
