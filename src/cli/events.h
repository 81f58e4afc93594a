/* events.h - `vcpuctl events`: the audit log (GET /v1/events), once or
 * followed, plus what the watching commands (events --follow, top, vm
 * stats) share: the --since time parser and the stop-on-SIGINT/SIGTERM,
 * EPIPE-aware output loop helpers (their GET is cli_get_json(), cli.h).
 * Parsing and rendering are pure (strings and JSON in, text on a FILE *
 * out) so the unit tests cover them without a daemon. */
#ifndef VCPUD_CLI_EVENTS_H
#define VCPUD_CLI_EVENTS_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "vcpud/error.h"

/* --- --since ---------------------------------------------------------- */

/* Latest time --since accepts: 9999-12-31T23:59:59Z, in unix seconds. */
#define CLI_SINCE_MAX_S 253402300799LL

/* A --since value as unix milliseconds. Accepted forms:
 *   a duration before now_ms: digits and one unit s, m, h or d ("90s",
 *     "10m", "2h", "1d");
 *   unix seconds: digits only ("1795816800");
 *   a UTC time: "2026-11-27T22:00:00Z", the "Z" optional (the time is UTC
 *     either way), ":SS" optional, or a date alone ("2026-11-27"); a space
 *     may stand for the "T".
 * Returns 0, or -1 with *err naming `s`: EINVAL for anything else, ERANGE
 * for overflow, a time before 1970 or after 9999. */
int cli_since_parse(const char *s, int64_t now_ms, int64_t *out_ms, struct error **err);

/* --- watching: until SIGINT/SIGTERM, or until the reader goes away ----- */

struct cli_watch {
	struct sigaction old_int, old_term, old_pipe;
};

/* Catch SIGINT and SIGTERM (they end the watch; cli_watch_stopped() turns
 * true) and ignore SIGPIPE (a closed pipe shows up as EPIPE instead) until
 * cli_watch_end(), which puts the previous dispositions back and forgets
 * the stop. Without a watch, cli_watch_stopped() is false. */
void cli_watch_begin(struct cli_watch *w);
void cli_watch_end(struct cli_watch *w);
bool cli_watch_stopped(void);

/* Sleep for ms milliseconds, or less when a stop signal comes. Returns
 * true when the watch should stop. */
bool cli_watch_sleep(int64_t ms);

/* Flush f after a batch of output. Returns 0; 1 when the reader has gone
 * (EPIPE: `vcpuctl top | head`), the error flag cleared so that nothing
 * more is written and the caller stops quietly with exit 0; -1 on another
 * write error, with errno set. */
int cli_watch_flush(FILE *f);

/* --- events ----------------------------------------------------------- */

/* Most events --limit takes; pages of CLI_EVENTS_PAGE are asked for (the
 * API allows 1..10000 per request) and followed with after=ID. */
#define CLI_EVENTS_LIMIT_MAX 1000000
#define CLI_EVENTS_PAGE 1000
/* How often --follow asks for new events. */
#define CLI_EVENTS_POLL_MS 1000
/* DETAILS is cut to this many characters, "..." included. */
#define CLI_EVENTS_DETAILS_MAX 100

struct cli_events_opts {
	bool help;
	bool json;                 /* --json: NDJSON, one event per line */
	bool follow;
	bool since_set;
	int64_t since_ms;          /* unix ms, when since_set */
	size_t limit;              /* at most the last `limit` events; 0: all */
};

/* Parse `vcpuctl events ...` (argv[0] = "events"); now_ms anchors --since
 * durations. Returns 0 (o->help: print help, send nothing), or -1 with
 * *err (EINVAL or ERANGE: a usage error naming the option and value). */
int cli_events_parse(int argc, char **argv, int64_t now_ms, struct cli_events_opts *o,
		     struct error **err);

/* The request path of one page: "/v1/events?limit=N[&since_ms=T][&after=ID]"
 * (after_id 0: from the start). Caller frees. */
char *cli_events_path(const struct cli_events_opts *o, int64_t after_id);

/* The events array of a GET /v1/events reply, each checked: an object with
 * integer "id" and "ts_ms", "actor", "action" and "target" strings when
 * present, ids increasing. Returns 0 with *events borrowed from `reply`,
 * or -1 with *err (EPROTO). */
int cli_events_from_reply(const json_t *reply, const json_t **events, struct error **err);

/* What `vcpuctl events` says on stderr when a reply to a request with
 * after=after_id has "pruned": true (the log's retention deleted events
 * the cursor had not reached): "note: N events (ids A..B) were deleted by
 * the log's retention (policy events.*) before being read". NULL when
 * the reply says nothing was missed (no "pruned", false, or no usable
 * "oldest_id" past the cursor). Caller frees. */
char *cli_events_pruned_note(const json_t *reply, int64_t after_id);

/* "details" as compact JSON (keys sorted) of at most max_chars characters:
 * longer ones end in "...", never in the middle of a UTF-8 sequence; "-"
 * for none, null or {}. Caller frees. */
char *cli_events_details(const json_t *details, size_t max_chars);

/* Column widths of the events table: fixed once the header is printed, so
 * that later batches (--follow) line up with the first. Start zeroed. */
struct cli_events_layout {
	bool header_done;
	int actor, action, target;
};

/* Print a JSON array of (checked) events: as NDJSON (each event compact
 * on its own line) when `json`, else as table rows TIME ACTOR ACTION TARGET
 * DETAILS, TIME in UTC ("2026-11-27T22:00:00Z"), "-" for an empty field,
 * the header and the widths taken from the first non-empty batch printed
 * through `layout`. */
void cli_events_print(FILE *f, const json_t *events, bool json,
		      struct cli_events_layout *layout);

#endif
