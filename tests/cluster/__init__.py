"""Scale-out proofs on PostgreSQL: several `api` and `worker` processes, crashes, outages."""
