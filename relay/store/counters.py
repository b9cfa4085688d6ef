"""The names of the relay's counters, shared by whoever counts (ingest, spool, forwarder) and
/metrics, which reports them. The spool keeps them in its own file, updated in the same
transactions as the records they count.
"""

RECEIVED = "received"  # worked out, not counted: what left the spool plus what waits
WAITING = "waiting"  # the spool's depth, read with the counters
REJECTED = "rejected"  # records, labelled by the first field that failed
REQUESTS_REJECTED = "requests_rejected"  # whole requests, by reason
DISABLED = "disabled"  # POSTs answered "disabled", by who switched it off
FORWARDED = "forwarded"
DUPLICATES = "duplicates"  # not forwarded: their event_id was delivered already
DROPPED = "dropped"  # given up on, by reason
UPSTREAM_ERRORS = "upstream_errors"  # failed deliveries, by kind
CONNECTIONS_CLOSED = "connections_closed"  # by the front, by reason: slow, over_cap
LIMITED = "limited"  # records not stored, by the rate limit that held: installation, session, relay
DISABLED_EVENTS = "disabled_events"  # records not stored: the config disables their componentId

# Each stored record leaves the spool as exactly one of these.
LEFT_THE_SPOOL = (FORWARDED, DUPLICATES, DROPPED)
