-- 007_samples_by_vm.sql - the history is written a VM's rows at a time and
-- pruned per VM by its primary key (vm, ts_ms) (src/daemon/history.c), so
-- the index on ts_ms that the old whole-table prune used goes: it cost a
-- page write in a different place for every row.
DROP INDEX IF EXISTS vm_samples_ts;
