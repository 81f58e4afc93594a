-- 002_vm_samples.sql - a short history of what the sampler measured per VM,
-- so that `vcpuctl vm top`/the throttler's decisions can be explained after
-- the fact and survive a daemon restart. One row per VM per sampling tick;
-- the daemon prunes rows older than its retention by ts_ms (hence the index).
-- Rows go with their VM (ON DELETE CASCADE).
CREATE TABLE vm_samples (
	vm            TEXT NOT NULL REFERENCES vms(name)
	              ON DELETE CASCADE ON UPDATE CASCADE,
	ts_ms         INTEGER NOT NULL,  -- unix milliseconds
	-- CPU time used over the tick, in percent of one CPU (a 4-vCPU VM
	-- running flat out is 400)
	usage_pct     REAL NOT NULL CHECK (usage_pct >= 0),
	-- share of the tick its vCPU threads were runnable but waiting (steal)
	steal_pct     REAL NOT NULL CHECK (steal_pct BETWEEN 0 AND 100),
	PRIMARY KEY (vm, ts_ms)
) STRICT, WITHOUT ROWID;
CREATE INDEX vm_samples_ts ON vm_samples(ts_ms);
