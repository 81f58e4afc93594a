/* top.h - `vcpuctl top`: the VMs' usage and steal of the last tick
 * (GET /v1/top) as a table, once or refreshed; and the rendering of a VM's
 * recent samples (GET /v1/vms/NAME/stats) that `vm show` and `vm stats`
 * print. Parsing and rendering are pure (argv or JSON in, text on a FILE *
 * out) so the unit tests cover them without a daemon. */
#ifndef VCPUD_CLI_TOP_H
#define VCPUD_CLI_TOP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vcpud/error.h"

#define CLI_TOP_INTERVAL_DEFAULT_MS 1000
/* --interval bounds, in seconds */
#define CLI_TOP_INTERVAL_MIN_S 0.1
#define CLI_TOP_INTERVAL_MAX_S 3600.0

struct cli_top_opts {
	bool help;
	bool once;                 /* --once, or implied by --json */
	bool json;                 /* --json after the command */
	int64_t interval_ms;       /* between refreshes */
};

/* Parse `vcpuctl top ...` (argv[0] = "top"). Returns 0 (o->help: print
 * help, send nothing), or -1 with *err (EINVAL or ERANGE: a usage error
 * naming the option and value). */
int cli_top_parse(int argc, char **argv, struct cli_top_opts *o, struct error **err);

/* A GET /v1/top reply as a header line (UTC time, tick, VM count and
 * "(dry-run)" when the daemon says so) and a table VM TENANT CLASS VCPUS
 * USAGE% STEAL% CAP THROTTLE STATE: figures with one decimal, "-" for null
 * or missing, CAP in % of one pCPU ("12.5%"), rows by steal (highest first,
 * unknown last), then name; "no VMs" for none. Nothing is printed unless
 * the whole reply is well-formed: -1 with *err (EPROTO) otherwise. */
int cli_top_render(FILE *f, const json_t *reply, struct error **err);

/* --- a VM's recent samples --------------------------------------------- */

/* What `vm show` asks for and prints. */
#define CLI_HISTORY_WINDOW_MS (5 * 60 * 1000)
#define CLI_HISTORY_LAST 10
#define CLI_SPARK_WIDTH 60      /* ticks in `vm show`'s sparklines */

/* One minute of samples (UTC minutes). Means and max are over the samples
 * that have the figure; n_usage / n_steal == 0: no figure that minute. */
struct cli_history_minute {
	int64_t minute_ms;         /* start of the minute, unix ms */
	unsigned samples;
	unsigned n_usage, n_steal;
	double usage_mean, steal_mean, steal_max;
};

/* Bucket a "samples" array ([{"ts_ms","usage_pct","steal_pct"}...], any
 * order; figures may be null) by minute. *out (caller frees; NULL for no
 * samples) holds *n minutes, oldest first. -1 with *err (EPROTO) when a
 * sample is malformed (no integer ts_ms >= 0, a figure not a number). */
int cli_history_summarize(const json_t *samples, struct cli_history_minute **out, size_t *n,
			  struct error **err);

/* A /stats reply for `vm show`: per-minute rows MINUTE SAMPLES USAGE%
 * STEAL% STEAL-MAX%, a blank line, then the last `last_n` samples as TIME
 * USAGE% STEAL%; "no samples yet" when there are none. Times are UTC.
 * Nothing is printed for a malformed reply (-1, *err EPROTO). */
int cli_history_print(FILE *f, const json_t *stats, size_t last_n, struct error **err);

/* Sparklines of a /stats reply's last `width` samples: steal (0-100%),
 * usage and the throttle's cap (0 to their highest), one character per
 * tick; Unicode blocks, or ASCII ("_.-=+*#@"). Nothing for no samples. -1
 * with *err (EPROTO) for a malformed reply. */
int cli_sparklines_print(FILE *f, const json_t *stats, size_t width, bool ascii,
			 struct error **err);

/* A /stats reply for `vm stats`: every sample as TIME USAGE% STEAL%, or
 * "no samples yet". -1 with *err (EPROTO) for a malformed reply. */
int cli_samples_print(FILE *f, const json_t *stats, struct error **err);

#endif
