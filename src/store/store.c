/* store.c - the SQLite connection behind vcpud's state: opening (WAL, foreign
 * keys, busy timeout), refusing files that are not ours or are newer than
 * us, applying the compiled-in migrations, transactions and the integrity
 * check. The tenant and event functions (store_tenant.c, store_event.c)
 * build on the helpers here (store_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store_internal.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

static int64_t real_now_ms(void)
{
	return now_real_ns() / 1000000;
}

/* --- locking, errors, statements ----------------------------------------- */

struct store *store_lock_(struct store *st)
{
	if (pthread_mutex_lock(&st->lock) != 0)
		abort();
	return st;
}

void store_unlockp_(struct store **st)
{
	if (*st)
		pthread_mutex_unlock(&(*st)->lock);
}

int store_sql_error(struct store *st, struct error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *ctx = xvasprintf(fmt, ap);
	va_end(ap);
	const char *msg = st->db ? sqlite3_errmsg(st->db) : "no connection";
	error_set(err, EIO, "%s: %s: %s", ctx, st->path, msg);
	free(ctx);
	return -1;
}

/* Parsing and planning a statement costs more than running most of ours
 * (a tick's SQL was 16-20% of it, half of that compiling), so each SQL
 * text is compiled once. Lookup: the literal's address first (the usual
 * hit), then the text; a statement stepped and not reset yet is someone's
 * (a nested use of the same SQL) and is skipped, so that one gets a copy. */
static sqlite3_stmt *cache_find(struct store *st, const char *sql)
{
	for (size_t i = 0; i < st->n_cache; i++) {
		struct store_cached_stmt *c = &st->cache[i];
		if (c->key == sql && !sqlite3_stmt_busy(c->stmt) && strcmp(c->sql, sql) == 0)
			return c->stmt;
	}
	for (size_t i = 0; i < st->n_cache; i++) {
		struct store_cached_stmt *c = &st->cache[i];
		if (!sqlite3_stmt_busy(c->stmt) && strcmp(c->sql, sql) == 0)
			return c->stmt;
	}
	return NULL;
}

int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out,
		  const char *what, struct error **err)
{
	*out = cache_find(st, sql);
	if (*out)
		return 0;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		store_sql_error(st, err, "cannot prepare the statement to %s", what);
		sqlite3_finalize(s);
		return -1;
	}
	if (!s)
		return error_set(err, EINVAL, "cannot prepare the statement to %s: no SQL", what);
	st->cache = xrealloc(st->cache, (st->n_cache + 1) * sizeof(*st->cache));
	st->cache[st->n_cache++] = (struct store_cached_stmt){ sql, xstrdup(sql), s };
	st->compiled++;
	*out = s;
	return 0;
}

void store_stmt_release(sqlite3_stmt *s)
{
	if (!s)
		return;
	/* the result is the last step's error, already reported */
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

size_t store_stmt_cached(struct store *st)
{
	return st->n_cache;
}

uint64_t store_stmt_compiled(struct store *st)
{
	return st->compiled;
}

static void cache_clear(struct store *st)
{
	for (size_t i = 0; i < st->n_cache; i++) {
		sqlite3_finalize(st->cache[i].stmt);
		free(st->cache[i].sql);
	}
	free(st->cache);
	st->cache = NULL;
	st->n_cache = 0;
}

int store_query_int64(struct store *st, const char *sql, int64_t *out, struct error **err)
{
	_cleanup_stmt_once_ sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_sql_error(st, err, "cannot run '%s'", sql);
	if (sqlite3_step(s) != SQLITE_ROW)
		return store_sql_error(st, err, "cannot run '%s'", sql);
	*out = sqlite3_column_int64(s, 0);
	return 0;
}

int store_column_copy(sqlite3_stmt *s, int i, char *buf, size_t size)
{
	const char *v = (const char *)sqlite3_column_text(s, i);
	if (!v || strlen(v) >= size)
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

int64_t store_now_ms(struct store *st)
{
	return st->now_ms();
}

sqlite3 *store_sqlite(struct store *st)
{
	return st->db;
}

const char *store_path(const struct store *st)
{
	return st->path;
}

void store_set_clock(struct store *st, int64_t (*now_ms)(void))
{
	STORE_LOCK(st);
	st->now_ms = now_ms ? now_ms : real_now_ms;
}

/* --- transactions ---------------------------------------------------------- */

void store_quiet_end(struct store_quiet *q)
{
	q->st->quiet_changes += sqlite3_total_changes64(q->st->db) - q->changes0;
}

int store_inventory_mark(struct store *st, struct store_mark *out, struct error **err)
{
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "PRAGMA data_version", &s, "read the data version", err) < 0)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW)
		return store_sql_error(st, err, "cannot read the data version");
	out->data_version = sqlite3_column_int64(s, 0);
	out->changes = sqlite3_total_changes64(st->db) - st->quiet_changes;
	return 0;
}

static void tx_normal_again(struct store_tx *tx);

/* BEGIN IMMEDIATE, at synchronous = FULL until it ends when durable */
static int tx_begin(struct store *st, struct store_tx *tx, bool durable, struct error **err)
{
	tx->st = st;
	tx->open = false;
	tx->durable = false;
	if (durable) {
		if (sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK)
			return store_sql_error(st, err, "cannot make the transaction durable");
		tx->durable = true;
	}
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		store_sql_error(st, err, "cannot begin a transaction");
		tx_normal_again(tx);
		return -1;
	}
	tx->open = true;
	return 0;
}

int store_tx_begin(struct store *st, struct store_tx *tx, struct error **err)
{
	return tx_begin(st, tx, false, err);
}

/* synchronous can only change outside a transaction */
static void tx_normal_again(struct store_tx *tx)
{
	if (!tx->durable)
		return;
	tx->durable = false;
	if (sqlite3_exec(tx->st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)
		log_error("database %s: cannot set synchronous back to NORMAL: %s", tx->st->path,
			  sqlite3_errmsg(tx->st->db));
}

int store_tx_begin_durable(struct store *st, struct store_tx *tx, struct error **err)
{
	return tx_begin(st, tx, true, err);
}

int store_read_begin(struct store *st, struct store_tx *tx, struct error **err)
{
	tx->st = st;
	tx->open = false;
	if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(st, err, "cannot begin a transaction");
	tx->open = true;
	return 0;
}

int store_tx_commit(struct store_tx *tx, struct error **err)
{
	if (sqlite3_exec(tx->st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(tx->st, err, "cannot commit");
	tx->open = false;
	tx_normal_again(tx);
	return 0;
}

void store_tx_endp(struct store_tx *tx)
{
	if (!tx->open) {
		tx_normal_again(tx);
		return;
	}
	tx->open = false;
	/* SQLite rolls some failures (SQLITE_FULL, I/O errors) back on its
	 * own; a second ROLLBACK would only fail. */
	if (!sqlite3_get_autocommit(tx->st->db) &&
	    sqlite3_exec(tx->st->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_error("database %s: cannot roll back: %s", tx->st->path,
			  sqlite3_errmsg(tx->st->db));
	tx_normal_again(tx);
}

/* --- opening and migrations ------------------------------------------------ */

static int newest_version(void)
{
	return store_migrations_count ? store_migrations[store_migrations_count - 1].version : 0;
}

static int pragma_text(struct store *st, const char *sql, char *buf, size_t size,
		       struct error **err)
{
	_cleanup_stmt_once_ sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		return store_sql_error(st, err, "cannot run '%s'", sql);
	const unsigned char *v = sqlite3_column_text(s, 0);
	snprintf(buf, size, "%s", v ? (const char *)v : "");
	return 0;
}

/* Refuse files that are not vcpud databases or come from a newer vcpud,
 * before anything (even the switch to WAL) writes to them. Reading the
 * header is also where a file that is not SQLite at all fails. */
static int check_identity(struct store *st, struct error **err)
{
	int64_t app_id, version, objects;
	if (store_query_int64(st, "PRAGMA application_id", &app_id, NULL) < 0)
		return error_set(err, EIO, "cannot open database %s: %s", st->path,
				 sqlite3_errmsg(st->db));
	if (store_query_int64(st, "PRAGMA user_version", &version, err) < 0 ||
	    store_query_int64(st, "SELECT count(*) FROM sqlite_schema", &objects, err) < 0)
		return error_wrap(err, "cannot open database %s", st->path);
	if (app_id != 0 && app_id != STORE_APPLICATION_ID)
		return error_set(err, EPROTO,
				 "database %s is not a vcpud database (its application_id "
				 "is 0x%08" PRIx32 ", vcpud's is 0x%08x); refusing to open it",
				 st->path, (uint32_t)app_id, (unsigned)STORE_APPLICATION_ID);
	if (app_id == 0 && (version != 0 || objects != 0))
		return error_set(err, EPROTO,
				 "database %s is not a vcpud database (it has %" PRId64
				 " tables or indexes and schema version %" PRId64
				 " but no vcpud application_id); refusing to open it",
				 st->path, objects, version);
	if (version > newest_version())
		return error_set(err, EPROTO,
				 "database %s has schema version %" PRId64 " but this vcpud "
				 "supports up to %d: it was written by a newer vcpud; "
				 "refusing to open it", st->path, version, newest_version());
	return 0;
}

static int configure(struct store *st, struct error **err)
{
	if (sqlite3_db_readonly(st->db, "main") == 1)
		return error_set(err, EIO,
				 "cannot open database %s: it is read-only (check the "
				 "permissions of the file and its directory)", st->path);
	char mode[32];
	if (pragma_text(st, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err) < 0)
		return error_wrap(err, "cannot switch database %s to WAL", st->path);
	/* an in-memory or temporary database has no file name and no WAL */
	const char *file = sqlite3_db_filename(st->db, "main");
	if (strcmp(mode, "wal") != 0 && file && *file)
		return error_set(err, EIO,
				 "cannot switch database %s to WAL: it stays in '%s' "
				 "journal mode", st->path, mode);
	/* the page cache: SQLite's default (2 MiB) is most of the store's
	 * memory; a tick reads its inventory and appends sample rows, and a
	 * page it no longer holds is a pread() of the OS page cache away */
	if (sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(st->db, "PRAGMA cache_size = -" STORE_CACHE_KIB_STR, NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(st, err, "cannot configure the database");
	int64_t fk;
	if (store_query_int64(st, "PRAGMA foreign_keys", &fk, err) < 0)
		return -1;
	if (fk != 1)
		return error_set(err, EIO, "database %s: this SQLite cannot enforce foreign "
				 "keys", st->path);
	return 0;
}

/* Apply one migration if the database is still below it. The version is
 * read again inside the write transaction, so two processes opening the
 * same file at once cannot both apply it. */
static int migrate_one(struct store *st, const struct store_migration *m, struct error **err)
{
	_cleanup_(store_tx_endp) struct store_tx tx = { 0 };
	int64_t cur;
	if (store_tx_begin(st, &tx, err) < 0 ||
	    store_query_int64(st, "PRAGMA user_version", &cur, err) < 0)
		return error_wrap(err, "cannot apply migration %s", m->name);
	if (m->version <= cur)
		return 0;
	if (m->version != cur + 1)
		return error_set(err, EIO, "cannot apply migration %s to database %s: it is "
				 "at schema version %" PRId64 ", not %d", m->name, st->path,
				 cur, m->version - 1);
	if (sqlite3_exec(st->db, m->sql, NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(st, err, "cannot apply migration %s", m->name);
	/* PRAGMA takes no parameters; the version comes from the binary */
	_cleanup_free_ char *set = xasprintf("PRAGMA user_version = %d", m->version);
	if (sqlite3_exec(st->db, set, NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(st, err, "cannot apply migration %s", m->name);
	if (store_tx_commit(&tx, err) < 0)
		return error_wrap(err, "cannot apply migration %s", m->name);
	log_info("database %s: applied migration %s", st->path, m->name);
	return 0;
}

static int migrate(struct store *st, int target, struct error **err)
{
	for (size_t i = 0; i < store_migrations_count; i++) {
		const struct store_migration *m = &store_migrations[i];
		if (m->version != (int)i + 1)
			return error_set(err, EIO, "compiled-in migration %s has version %d, "
					 "expected %zu", m->name, m->version, i + 1);
		if (m->version > target)
			break;
		if (migrate_one(st, m, err) < 0)
			return -1;
	}
	return 0;
}

/* SQLITE_TRACE_STMT: one call per statement run (and per trigger program
 * it starts): the count /v1/health reports per tick. SQLITE_TRACE_ROW: one
 * per result row. */
static int trace_stmt(unsigned type, void *ctx, void *p, void *x)
{
	(void)p, (void)x;
	struct store *st = ctx;
	if (type == SQLITE_TRACE_ROW)
		st->rows++;
	else
		st->statements++;
	return 0;
}

uint64_t store_statements(struct store *st)
{
	return st->statements;
}

uint64_t store_rows(struct store *st)
{
	return st->rows;
}

/* The database holds every tenant's quota and the audit log: readable by
 * its owner and group, never by others (SQLite creates files 0644 less
 * the umask; its -wal and -shm files take the database's mode when they
 * are created). A file others could read, say from an older vcpud, loses
 * that at the next start. */
static void keep_private(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		_cleanup_free_ char *f = xasprintf("%s%s", path, suffix[i]);
		struct stat sb;
		if (stat(f, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0007) &&
		    chmod(f, sb.st_mode & 0770) < 0)
			log_warn("database %s: cannot make it private (chmod o-rwx): %s", f,
				 strerror(errno));
	}
}

static int open_at(const char *path, int version, struct store **out, struct error **err)
{
	*out = NULL;
	if (!path || !*path)
		return error_set(err, EINVAL, "the database path is empty");
	if (version < 0 || version > newest_version())
		return error_set(err, EINVAL, "schema version %d is out of range (0..%d)",
				 version, newest_version());

	_cleanup_(store_closep) struct store *st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	st->now_ms = real_now_ms;
	if (pthread_mutex_init(&st->lock, NULL) != 0)
		abort();

	int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		int sys = st->db ? sqlite3_system_errno(st->db) : 0;
		if (sys)
			return error_set(err, EIO, "cannot open database %s: %s (%s)", path,
					 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc),
					 strerror(sys));
		return error_set(err, EIO, "cannot open database %s: %s", path,
				 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	}
	keep_private(path);
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_trace_v2(st->db, SQLITE_TRACE_STMT | SQLITE_TRACE_ROW, trace_stmt, st);

	if (check_identity(st, err) < 0 || configure(st, err) < 0 ||
	    migrate(st, version, err) < 0)
		return -1;
	st->ready = true;
	*out = steal_ptr(&st);
	return 0;
}

int store_open(const char *path, struct store **out, struct error **err)
{
	return open_at(path, newest_version(), out, err);
}

int store_open_at_version(const char *path, int version, struct store **out,
			  struct error **err)
{
	return open_at(path, version, out, err);
}

/* --- checkpoints off the caller's thread ----------------------------------- */

/* SQLite's default (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT), put back at close */
#define STORE_WAL_AUTOCHECKPOINT_PAGES 1000

struct store_checkpointer {
	sqlite3 *db;               /* its own connection to the same file */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	unsigned every_ms;
	uint64_t runs;             /* checkpoints made (tests) */
};

static void *checkpointer_main(void *arg)
{
	struct store_checkpointer *c = arg;
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += c->every_ms / 1000;
		until.tv_nsec += (long)(c->every_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
			;
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		/* PASSIVE: as much as it can without waiting for anyone; the
		 * writer goes on appending meanwhile */
		int nlog = 0, ndone = 0;
		int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog,
						   &ndone);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("database checkpoint: %s", sqlite3_errmsg(c->db));
		pthread_mutex_lock(&c->mu);
		c->runs++;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int store_checkpoint_in_background(struct store *st, unsigned every_ms, struct error **err)
{
	if (st->ckpt)
		return 0;
	const char *file = sqlite3_db_filename(st->db, "main");
	if (!file || !*file)
		return 0; /* in memory: no WAL */
	struct store_checkpointer *c = xcalloc(1, sizeof(*c));
	c->every_ms = every_ms ? every_ms : STORE_CHECKPOINT_EVERY_MS;
	if (sqlite3_open_v2(file, &c->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		error_set(err, EIO, "database %s: cannot open a connection for checkpoints: %s",
			  st->path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
		sqlite3_close(c->db);
		free(c);
		return -1;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&c->mu, NULL) != 0 || pthread_cond_init(&c->cv, &ca) != 0)
		abort();
	pthread_condattr_destroy(&ca);
	/* the thread takes no signal: it starts with all of them blocked
	 * (a daemon that waits for SIGHUP on a signalfd blocks it in its own
	 * thread only, perhaps after this; the default action would end it) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int prc = pthread_create(&c->thread, NULL, checkpointer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		sqlite3_close(c->db);
		free(c);
		return error_set(err, EAGAIN, "database %s: cannot start the checkpoint thread",
				 st->path);
	}
	STORE_LOCK(st);
	sqlite3_wal_autocheckpoint(st->db, 0);
	st->ckpt = c;
	return 0;
}

uint64_t store_checkpoints(struct store *st)
{
	if (!st->ckpt)
		return 0;
	pthread_mutex_lock(&st->ckpt->mu);
	uint64_t n = st->ckpt->runs;
	pthread_mutex_unlock(&st->ckpt->mu);
	return n;
}

static void checkpointer_stop(struct store *st)
{
	struct store_checkpointer *c = st->ckpt;
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	st->ckpt = NULL;
	/* the last connection checkpoints on close, as SQLite does */
	sqlite3_wal_autocheckpoint(st->db, STORE_WAL_AUTOCHECKPOINT_PAGES);
}

void store_close(struct store *st)
{
	if (!st)
		return;
	checkpointer_stop(st);
	cache_clear(st);
	if (st->db) {
		/* refresh the planner's statistics if they are stale; cheap */
		if (st->ready)
			sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
		if (sqlite3_close(st->db) != SQLITE_OK)
			log_error("database %s: cannot close: %s", st->path,
				  sqlite3_errmsg(st->db));
	}
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

int store_schema_version(struct store *st)
{
	STORE_LOCK(st);
	int64_t v;
	if (store_query_int64(st, "PRAGMA user_version", &v, NULL) < 0)
		return -1;
	return (int)v;
}

/* --- integrity --------------------------------------------------------------- */

int store_integrity_check(struct store *st, struct error **err)
{
	STORE_LOCK(st);
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	if (store_prepare(st, "PRAGMA integrity_check", &s, "check integrity", err) < 0)
		return -1;
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW)
		return store_sql_error(st, err, "cannot check the integrity of the database");
	const char *first = (const char *)sqlite3_column_text(s, 0);
	if (!first || strcmp(first, "ok") != 0) {
		_cleanup_free_ char *problem = xstrdup(first ? first : "(no result)");
		size_t more = 0;
		while (sqlite3_step(s) == SQLITE_ROW)
			more++;
		return error_set(err, EIO, "database %s failed its integrity check: %s%s",
				 st->path, problem,
				 more ? " (and more problems)" : "");
	}
	store_stmt_releasep(&s);

	/* rows a client with foreign keys off could have orphaned */
	if (store_prepare(st, "PRAGMA foreign_key_check", &s, "check foreign keys", err) < 0)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		return error_set(err, EIO, "database %s failed its integrity check: a row "
				 "of table %s refers to a missing row of table %s",
				 st->path, (const char *)sqlite3_column_text(s, 0),
				 (const char *)sqlite3_column_text(s, 2));
	if (rc != SQLITE_DONE)
		return store_sql_error(st, err, "cannot check the foreign keys of the database");
	return 0;
}
