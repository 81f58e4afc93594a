-- 008_throttle_seconds.sql - the throttler's holds are measured in time,
-- not in ticks (API calls and libvirt events add ticks, which shortened
-- them): a cap's hold length is kept in milliseconds. Rows of an older
-- vcpud held it in ticks; they are taken as ticks of the default 1 s
-- interval (hold_until_ms was wall-clock already and stays as it is).
ALTER TABLE throttle_caps RENAME COLUMN hold_len TO hold_len_ms;
UPDATE throttle_caps SET hold_len_ms = MIN(hold_len_ms * 1000, 86400000);
