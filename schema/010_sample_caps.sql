-- 010_sample_caps.sql - each sample also keeps the throttle's cap on the VM
-- at that tick (percent of one pCPU; NULL: not capped), so that `vcpuctl vm
-- show` can draw steal and caps over time and a cap can be explained after
-- the fact.
ALTER TABLE vm_samples ADD COLUMN cap_pct REAL CHECK (cap_pct IS NULL OR cap_pct >= 0);
