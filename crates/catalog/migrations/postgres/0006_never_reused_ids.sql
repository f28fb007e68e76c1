-- v6: nothing to do: identity columns never hand out an id twice (SQLite
-- needed counters for archive jobs, alarms and nodes).
SELECT 1;
