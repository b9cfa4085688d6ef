"""Stage 2: store. The codec writes each record's stored form and reads it back as a
StoredRecord; the SQLite spool keeps rows of them, the delivered ids and the counters."""
