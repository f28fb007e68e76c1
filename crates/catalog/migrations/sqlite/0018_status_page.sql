-- v18: the status page lists a user's own pins and stage requests.
CREATE INDEX pins_owner ON pins (owner, expires);
CREATE INDEX stage_requests_owner ON stage_requests (owner, id);
