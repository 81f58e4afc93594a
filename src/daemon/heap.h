/* heap.h - the daemon's malloc settings and its trim after a tick (glibc).
 *
 * heap_setup() runs once at start-up, before anything is allocated in
 * bulk; heap_after_tick() runs at the end of each control-loop tick. */
#ifndef VCPUD_DAEMON_HEAP_H
#define VCPUD_DAEMON_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Blocks of this size or more are mmap()ed and go back to the kernel when
 * freed (fixed: glibc's own threshold rises to the largest block freed). */
#define HEAP_MMAP_THRESHOLD_BYTES (128u * 1024)
/* The top of the heap is given back past this much free space. */
#define HEAP_TRIM_THRESHOLD_BYTES (256u * 1024)
/* heap_after_tick() trims when more than this is free inside the heap. */
#define HEAP_TRIM_MIN_FREE_BYTES (1024u * 1024)

struct heap_trim_stats {
	bool trimmed;           /* malloc_trim() ran */
	size_t free_bytes;      /* free in the heap before it (mallinfo2 fordblks) */
	size_t in_use_bytes;    /* allocated (uordblks + hblkhd) */
	int64_t trim_ns;        /* time spent in malloc_trim() */
};

/* Fix the thresholds above and cap the malloc arenas at 2 (vcpud runs its
 * loop on one thread; a libvirt event thread needs no arena of its own per
 * CPU). */
void heap_setup(void);

/* After a tick: when more than HEAP_TRIM_MIN_FREE_BYTES lie free inside the
 * heap (what the tick's short-lived objects left between live ones), give
 * their pages back with malloc_trim(0). Fills *out (may be NULL). */
void heap_after_tick(struct heap_trim_stats *out);

#endif
