-- 006_throttle.sql - the throttler's caps survive a restart of vcpud (a
-- crash, an upgrade, systemd's Restart=on-failure): without them the first
-- tick after a restart would lift every cap and forget every doubled hold.
-- One row per capped VM (enforced, or a dry-run shadow cap), replaced as a
-- whole in the transaction that records the throttle decisions' events.
-- Holds are wall-clock (unix ms), since tick numbers restart with vcpud.
CREATE TABLE throttle_caps (
	vm            TEXT NOT NULL PRIMARY KEY REFERENCES vms(name)
	              ON DELETE CASCADE ON UPDATE CASCADE,
	dry           INTEGER NOT NULL CHECK (dry IN (0, 1)),
	-- cpu.max quota per 100 ms period (1 ms .. the kernel's MAX_BW)
	quota_us      INTEGER NOT NULL CHECK (quota_us BETWEEN 1000 AND 17592186044415),
	last_good_us  INTEGER NOT NULL CHECK (last_good_us >= 0),
	probing       INTEGER NOT NULL CHECK (probing IN (0, 1)),
	hold_len      INTEGER NOT NULL CHECK (hold_len BETWEEN 0 AND 4294967295),
	hold_until_ms INTEGER NOT NULL CHECK (hold_until_ms >= 0),
	last_action   TEXT NOT NULL
	              CHECK (last_action IN ('cap', 'tighten', 'loosen', 'backoff', 'restore')),
	-- JSON array of the victims' VM names
	victims       TEXT NOT NULL CHECK (json_valid(victims) AND json_type(victims) = 'array'),
	saved_ms      INTEGER NOT NULL CHECK (saved_ms >= 0)
);
