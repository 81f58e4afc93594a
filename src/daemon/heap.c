/* heap.c - the daemon's malloc settings and its trim after a tick. Each
 * tick builds and frees megabytes of short-lived objects (the inventory, the
 * desired tree, /v1/top, sample rows) among long-lived ones (the engine's
 * table, the dry-run overlay, the sampler's slots); glibc malloc keeps the
 * pages of what was freed below a live object, so without this the heap's
 * RSS is the peak of the busiest tick, kept for good. */
#include <malloc.h>

#include "daemon/heap.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

void heap_setup(void)
{
	/* each call also turns glibc's dynamic thresholds off */
	if (!mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD_BYTES) ||
	    !mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD_BYTES) ||
	    !mallopt(M_ARENA_MAX, 2))
		log_warn("heap: mallopt() refused a setting: keeping glibc's defaults");
}

void heap_after_tick(struct heap_trim_stats *out)
{
	struct heap_trim_stats st = { 0 };
	struct mallinfo2 mi = mallinfo2();
	st.free_bytes = mi.fordblks;
	st.in_use_bytes = mi.uordblks + mi.hblkhd;
	if (mi.fordblks > HEAP_TRIM_MIN_FREE_BYTES) {
		int64_t t0 = now_mono_ns();
		malloc_trim(0);
		st.trim_ns = now_mono_ns() - t0;
		st.trimmed = true;
		log_debug("heap: %zu KiB in use, %zu KiB free given back in %.3f ms",
			  st.in_use_bytes / 1024, st.free_bytes / 1024, (double)st.trim_ns / 1e6);
	}
	if (out)
		*out = st;
}
