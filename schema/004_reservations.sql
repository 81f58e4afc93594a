-- 004_reservations.sql - the admission ledger: one row per admitted VM,
-- whether or not its process runs yet (so no reference to vms), holding the
-- placement admission chose. The placement is kept in the text forms of the
-- plan module (include/vcpud/admit.h): shares "NODE:VCPUS[,...]" ("0:6,1:4")
-- and pcpus a CPU list ("4-7,12", '' for a shared VM). The store checks only
-- their characters and lengths (the buffers of struct store_reservation in
-- include/vcpud/store.h); the plan module parses them. A tenant with
-- reservations cannot be deleted (RESTRICT, checked at once).
CREATE TABLE reservations (
	vm            TEXT NOT NULL PRIMARY KEY
	              CHECK (length(vm) BETWEEN 1 AND 64
	                     AND vm NOT GLOB '*[^A-Za-z0-9_.-]*'
	                     AND vm NOT IN ('.', '..')),
	tenant        TEXT NOT NULL REFERENCES tenants(name)
	              ON DELETE RESTRICT ON UPDATE CASCADE,
	vcpus         INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 4096),
	-- NULL: no memory size given
	memory_bytes  INTEGER CHECK (memory_bytes IS NULL OR memory_bytes > 0),
	cpu_policy    TEXT NOT NULL CHECK (cpu_policy IN ('shared', 'dedicated')),
	thread_policy TEXT NOT NULL
	              CHECK (thread_policy IN ('prefer', 'isolate', 'require')),
	shares        TEXT NOT NULL
	              CHECK (length(shares) BETWEEN 1 AND 255
	                     AND shares NOT GLOB '*[^0-9:,]*'),
	pcpus         TEXT NOT NULL DEFAULT ''
	              CHECK (length(pcpus) <= 1023
	                     AND pcpus NOT GLOB '*[^0-9,-]*'),
	created_at    INTEGER NOT NULL   -- unix seconds
) STRICT;
-- Foreign-key checks on tenant deletes and the per-tenant counts look
-- reservations up by tenant.
CREATE INDEX reservations_tenant ON reservations(tenant);
