/* ledger_local.c - the local ledger (see vcpud/ledger.h): this host's
 * SQLite file is the truth. A tenant is its row and a booking is the
 * reservation the registry writes in the same transaction as the VM, with
 * the quota decided by admit_vm() against this host's reservations: so
 * every operation here has nothing left to do and completes at once. */
#include <errno.h>
#include <stdlib.h>

#include "vcpud/ledger.h"
#include "vcpud/util.h"

static void done_now(ledger_done_fn done, void *data)
{
	if (done)
		done(data, 0, NULL, NULL);
}

static void l_free(struct ledger *l)
{
	free(l);
}

static void l_book(struct ledger *l, const struct ledger_booking *b, ledger_done_fn done,
		   void *data)
{
	(void)l; (void)b;
	done_now(done, data);
}

static void l_unbook(struct ledger *l, const char *tenant, const char *vm, ledger_done_fn done,
		     void *data)
{
	(void)l; (void)tenant; (void)vm;
	done_now(done, data);
}

static void l_sync(struct ledger *l, const struct ledger_booking *local, size_t n)
{
	(void)l; (void)local; (void)n;
}

static void l_t_create(struct ledger *l, const struct tenant *t, ledger_done_fn done, void *data)
{
	(void)l; (void)t;
	done_now(done, data);
}

static void l_t_update(struct ledger *l, const char *name, const struct tenant_patch *p,
		       ledger_done_fn done, void *data)
{
	(void)l; (void)name; (void)p;
	done_now(done, data);
}

static void l_t_delete(struct ledger *l, const char *name, ledger_done_fn done, void *data)
{
	(void)l; (void)name;
	done_now(done, data);
}

static void no_fleet(ledger_done_fn done, void *data)
{
	struct error *e = NULL;
	error_set(&e, ENOENT, "this vcpud keeps its tenants on this host only (it runs "
		  "without --fleet): there is no fleet of hosts");
	done(data, -1, e, NULL);
	error_free(&e);
}

static void l_hosts(struct ledger *l, ledger_done_fn done, void *data)
{
	(void)l;
	no_fleet(done, data);
}

static void l_evict(struct ledger *l, const char *host, ledger_done_fn done, void *data)
{
	(void)l; (void)host;
	no_fleet(done, data);
}

static json_t *l_status(struct ledger *l)
{
	(void)l;
	return json_pack("{s:s}", "backend", "local");
}

static int l_fd(struct ledger *l)
{
	(void)l;
	return -1;
}

static void l_dispatch(struct ledger *l)
{
	(void)l;
}

static bool l_tenant_use(struct ledger *l, const char *tenant, struct ledger_tenant_use *out)
{
	(void)l; (void)tenant; (void)out;
	return false;
}

static const struct ledger_ops local_ops = {
	.name = "local",
	.fleet = false,
	.free = l_free,
	.book = l_book,
	.unbook = l_unbook,
	.sync_bookings = l_sync,
	.tenant_create = l_t_create,
	.tenant_update = l_t_update,
	.tenant_delete = l_t_delete,
	.hosts = l_hosts,
	.evict = l_evict,
	.status = l_status,
	.fd = l_fd,
	.dispatch = l_dispatch,
	.tenant_use = l_tenant_use,
};

struct ledger *ledger_local_new(void)
{
	struct ledger *l = xcalloc(1, sizeof(*l));
	l->ops = &local_ops;
	return l;
}
