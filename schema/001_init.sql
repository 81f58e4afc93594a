-- 001_init.sql - vcpud's initial schema: tenants (quota holders), the VMs
-- they own, the vCPU threads of each VM and the append-only audit log.
-- Applied by src/store/store.c inside one transaction together with
-- PRAGMA user_version = 1. Every table is STRICT so that a wrong type is an
-- error rather than a silent conversion, and the CHECKs mirror the ranges of
-- include/vcpud/tenant.h so that even a hand-edited row cannot hold a value
-- the daemon would refuse.

-- 'vcpu' in ASCII (STORE_APPLICATION_ID in store.h): marks the file as ours.
PRAGMA application_id = 1986228341;

-- Names are the cgroup directory names too: [A-Za-z0-9_.-]{1,64}, not . or ..
CREATE TABLE tenants (
	name          TEXT NOT NULL PRIMARY KEY
	              CHECK (length(name) BETWEEN 1 AND 64
	                     AND name NOT GLOB '*[^A-Za-z0-9_.-]*'
	                     AND name NOT IN ('.', '..')),
	vcpus         INTEGER NOT NULL CHECK (vcpus BETWEEN 0 AND 65536),
	weight        INTEGER NOT NULL DEFAULT 100 CHECK (weight BETWEEN 1 AND 10000),
	-- NULL: no aggregate cap
	cpu_max_cores REAL CHECK (cpu_max_cores IS NULL
	                          OR cpu_max_cores BETWEEN 0.01 AND 4096.0),
	-- NULL: no memory quota; 4 KiB .. 2^50
	memory_bytes  INTEGER CHECK (memory_bytes IS NULL
	                             OR memory_bytes BETWEEN 4096 AND 1125899906842624),
	class         TEXT NOT NULL DEFAULT 'burstable'
	              CHECK (class IN ('guaranteed', 'burstable', 'best-effort')),
	created_at    INTEGER NOT NULL,  -- unix seconds
	updated_at    INTEGER NOT NULL CHECK (updated_at >= created_at)
) STRICT;

-- A VM belongs to exactly one tenant; a tenant with VMs cannot be deleted
-- (RESTRICT is checked at once, not at commit, unlike NO ACTION).
-- state: what the discoverer last saw; 'gone' = the process has exited but
-- the row is kept until the VM is released.
-- source: how vcpud learned of it (an API registration, libvirt, /proc).
CREATE TABLE vms (
	name          TEXT NOT NULL PRIMARY KEY
	              CHECK (length(name) BETWEEN 1 AND 64
	                     AND name NOT GLOB '*[^A-Za-z0-9_.-]*'
	                     AND name NOT IN ('.', '..')),
	tenant        TEXT NOT NULL REFERENCES tenants(name)
	              ON DELETE RESTRICT ON UPDATE CASCADE,
	pid           INTEGER CHECK (pid IS NULL OR pid > 0),
	vcpus         INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 65536),
	memory_bytes  INTEGER CHECK (memory_bytes IS NULL OR memory_bytes > 0),
	state         TEXT NOT NULL DEFAULT 'unknown'
	              CHECK (state IN ('unknown', 'running', 'paused', 'stopped',
	                               'crashed', 'gone')),
	source        TEXT NOT NULL
	              CHECK (source IN ('registered', 'libvirt', 'proc')),
	-- libvirt domain UUID, canonical 8-4-4-4-12 form; NULL when unknown
	uuid          TEXT UNIQUE CHECK (uuid IS NULL OR length(uuid) = 36),
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL CHECK (updated_at >= created_at)
) STRICT;
-- Foreign-key checks on tenant deletes and the per-tenant sums of
-- vcpus_used / vm_count both look VMs up by tenant.
CREATE INDEX vms_tenant ON vms(tenant);
-- The discoverer matches processes to VMs by pid.
CREATE INDEX vms_pid ON vms(pid) WHERE pid IS NOT NULL;

-- The vCPU threads of a VM (index 0..vcpus-1 -> thread id once known).
CREATE TABLE vcpus (
	vm            TEXT NOT NULL REFERENCES vms(name)
	              ON DELETE CASCADE ON UPDATE CASCADE,
	idx           INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 65535),
	tid           INTEGER CHECK (tid IS NULL OR tid > 0),
	PRIMARY KEY (vm, idx)
) STRICT, WITHOUT ROWID;

-- The audit log: append-only, one row per change, written in the same
-- transaction as the change. AUTOINCREMENT so that ids are never reused
-- and "events after id N" is a reliable cursor.
CREATE TABLE events (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	ts_ms         INTEGER NOT NULL,  -- unix milliseconds
	actor         TEXT NOT NULL,     -- "uid:0", "vcpud"
	action        TEXT NOT NULL CHECK (action <> ''),  -- "tenant.create"
	target        TEXT NOT NULL,     -- "tenant/acme", "vm/web-1"
	details       TEXT NOT NULL DEFAULT '{}'
	              CHECK (json_valid(details) AND json_type(details) = 'object')
) STRICT;
CREATE INDEX events_ts ON events(ts_ms);
