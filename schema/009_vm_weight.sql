-- 009_vm_weight.sql - a VM's own cpu.weight, set by an operator (`vcpuctl
-- vm set NAME --weight N`, like libvirt's <shares>). NULL: the default, the
-- tenant's weight times the VM's share of the tenant's vCPUs, so the kernel
-- splits a tenant's share between its VMs by vCPUs, as the throttler's fair
-- share assumes.
ALTER TABLE vms ADD COLUMN weight INTEGER CHECK (weight IS NULL OR weight BETWEEN 1 AND 10000);
