-- 005_lifecycle.sql - what the VM lifecycle (src/registry/) needs: a VM's
-- identity is its PID together with the process's start time, and a state
-- change is dated, so that a VM whose process is gone frees its admission
-- after policy admission.gone_grace_s. The reservations table is rebuilt
-- without the fixed text limits of 004 (a dedicated VM's pCPU list and a
-- share list spanning many nodes outgrew them): the C side now keeps these
-- texts on the heap.

-- /proc/PID/stat field 22 (clock ticks after boot) of the VM's process when
-- its pid was recorded; NULL: not known (rows from before this migration).
ALTER TABLE vms ADD COLUMN start_time INTEGER
	CHECK (start_time IS NULL OR start_time >= 0);
-- When the state last changed (unix milliseconds); NULL: not known.
ALTER TABLE vms ADD COLUMN state_since_ms INTEGER
	CHECK (state_since_ms IS NULL OR state_since_ms >= 0);

CREATE TABLE reservations_new (
	vm            TEXT NOT NULL PRIMARY KEY
	              CHECK (length(vm) BETWEEN 1 AND 64
	                     AND vm NOT GLOB '*[^A-Za-z0-9_.-]*'
	                     AND vm NOT IN ('.', '..')),
	tenant        TEXT NOT NULL REFERENCES tenants(name)
	              ON DELETE RESTRICT ON UPDATE CASCADE,
	vcpus         INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 4096),
	memory_bytes  INTEGER CHECK (memory_bytes IS NULL OR memory_bytes > 0),
	cpu_policy    TEXT NOT NULL CHECK (cpu_policy IN ('shared', 'dedicated')),
	thread_policy TEXT NOT NULL
	              CHECK (thread_policy IN ('prefer', 'isolate', 'require')),
	-- "NODE:VCPUS[,...]": at most 64 nodes (STORE_RES_SHARES_MAX in store.h)
	shares        TEXT NOT NULL
	              CHECK (length(shares) BETWEEN 1 AND 1023
	                     AND shares NOT GLOB '*[^0-9:,]*'),
	-- a CPU list; 4096 pCPUs written one by one fit (STORE_RES_PCPUS_MAX)
	pcpus         TEXT NOT NULL DEFAULT ''
	              CHECK (length(pcpus) <= 65535
	                     AND pcpus NOT GLOB '*[^0-9,-]*'),
	created_at    INTEGER NOT NULL
) STRICT;
INSERT INTO reservations_new (vm, tenant, vcpus, memory_bytes, cpu_policy, thread_policy,
                              shares, pcpus, created_at)
	SELECT vm, tenant, vcpus, memory_bytes, cpu_policy, thread_policy, shares, pcpus,
	       created_at FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
CREATE INDEX reservations_tenant ON reservations(tenant);
