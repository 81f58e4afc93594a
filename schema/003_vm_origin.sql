-- 003_vm_origin.sql - where a registered VM's process lived before vcpud
-- moved it into its tree (its /proc/PID/cgroup path, relative to the cgroup2
-- mount), so that releasing a VM that still runs puts it back there instead
-- of leaving it in a cgroup vcpud is about to remove. NULL: not known (the
-- release then uses the mount's root cgroup).
ALTER TABLE vms ADD COLUMN origin_cgroup TEXT
	CHECK (origin_cgroup IS NULL
	       OR (length(origin_cgroup) BETWEEN 1 AND 511
	           AND substr(origin_cgroup, 1, 1) = '/'));
